package image

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/cpu"

	"github.com/berth-project/berth/internal/errdefs"
)

// HostPlatform is the platform pulls pick out of multi-platform indexes:
// linux on this machine's architecture, with the variant (CPU feature
// level) it supports.
func HostPlatform() v1.Platform {
	p := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	switch runtime.GOARCH {
	case "amd64":
		p.Variant = "v" + strconv.Itoa(amd64Level())
	case "arm64":
		p.Variant = "v8"
	case "arm":
		p.Variant = "v7"
	}
	return p
}

// amd64Level is the x86-64 micro-architecture level the CPU supports.
func amd64Level() int {
	x := cpu.X86
	if !(x.HasSSE3 && x.HasSSSE3 && x.HasSSE41 && x.HasSSE42 && x.HasPOPCNT) {
		return 1
	}
	if !(x.HasAVX && x.HasAVX2 && x.HasBMI1 && x.HasBMI2 && x.HasFMA && x.HasOSXSAVE) {
		return 2
	}
	if !(x.HasAVX512F && x.HasAVX512BW && x.HasAVX512CD && x.HasAVX512DQ && x.HasAVX512VL) {
		return 3
	}
	return 4
}

// baseVariant is what an index entry without a variant means.
func baseVariant(arch string) int {
	switch arch {
	case "amd64":
		return 1
	case "arm64":
		return 8
	case "arm":
		return 7 // docker's default for arm without a variant
	}
	return 0
}

func variantLevel(arch, variant string) (int, bool) {
	if variant == "" {
		return baseVariant(arch), true
	}
	n, err := strconv.Atoi(strings.TrimPrefix(variant, "v"))
	if err != nil || !strings.HasPrefix(variant, "v") {
		return 0, false
	}
	return n, true
}

// SelectManifest picks the entry of an index that runs on want: same OS and
// architecture, and a variant the host supports (amd64 v1..vN, arm
// v5..v7, arm64 v8); among those the highest variant wins (the most
// optimized build the CPU runs), then the first listed. An index entry
// without a platform is skipped (attestations, artifacts).
func SelectManifest(im *v1.IndexManifest, want v1.Platform) (v1.Descriptor, error) {
	wantLevel, ok := variantLevel(want.Architecture, want.Variant)
	if !ok {
		wantLevel = -1
	}
	best, bestLevel := -1, -1
	for i, d := range im.Manifests {
		p := d.Platform
		if p == nil || p.OS != want.OS || p.Architecture != want.Architecture {
			continue
		}
		if !d.MediaType.IsImage() && !d.MediaType.IsIndex() {
			continue
		}
		level, ok := variantLevel(p.Architecture, p.Variant)
		switch {
		case !ok || wantLevel < 0:
			// Variants that are not levels must match exactly.
			if p.Variant != want.Variant {
				continue
			}
			level = 0
		case level > wantLevel:
			continue
		}
		if level > bestLevel {
			best, bestLevel = i, level
		}
	}
	if best < 0 {
		var have []string
		for _, d := range im.Manifests {
			if d.Platform != nil {
				have = append(have, d.Platform.String())
			}
		}
		return v1.Descriptor{}, errdefs.NotFound(fmt.Sprintf("the image index has no manifest for %s (it has %s)", want.String(), strings.Join(have, ", ")))
	}
	return im.Manifests[best], nil
}
