package image

import (
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func indexEntry(hex, os, arch, variant string) v1.Descriptor {
	return v1.Descriptor{
		MediaType: types.OCIManifestSchema1,
		Digest:    v1.Hash{Algorithm: "sha256", Hex: strings.Repeat(hex, 64)},
		Platform:  &v1.Platform{OS: os, Architecture: arch, Variant: variant},
	}
}

func TestSelectManifest(t *testing.T) {
	attest := v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("f", 64)},
		Platform: &v1.Platform{OS: "unknown", Architecture: "unknown"}}
	idx := &v1.IndexManifest{Manifests: []v1.Descriptor{
		indexEntry("1", "linux", "arm", "v6"),
		indexEntry("2", "linux", "arm", "v7"),
		indexEntry("3", "linux", "arm64", "v8"),
		indexEntry("4", "linux", "amd64", ""),
		indexEntry("5", "linux", "amd64", "v3"),
		indexEntry("6", "windows", "amd64", ""),
		indexEntry("7", "linux", "s390x", ""),
		attest,
	}}
	for _, tc := range []struct {
		want v1.Platform
		hex  string
	}{
		{v1.Platform{OS: "linux", Architecture: "amd64", Variant: "v1"}, "4"},
		{v1.Platform{OS: "linux", Architecture: "amd64", Variant: "v2"}, "4"},
		{v1.Platform{OS: "linux", Architecture: "amd64", Variant: "v3"}, "5"},
		{v1.Platform{OS: "linux", Architecture: "amd64", Variant: "v4"}, "5"},
		{v1.Platform{OS: "linux", Architecture: "amd64"}, "4"},
		{v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, "3"},
		{v1.Platform{OS: "linux", Architecture: "arm64"}, "3"},
		{v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, "2"},
		{v1.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}, "1"},
		{v1.Platform{OS: "linux", Architecture: "s390x"}, "7"},
	} {
		got, err := SelectManifest(idx, tc.want)
		if err != nil {
			t.Errorf("%s: %v", tc.want.String(), err)
			continue
		}
		if got.Digest.Hex[:1] != tc.hex {
			t.Errorf("%s: picked %s, want entry %s", tc.want.String(), got.Digest.Hex[:1], tc.hex)
		}
	}
	_, err := SelectManifest(idx, v1.Platform{OS: "linux", Architecture: "riscv64"})
	if err == nil || !strings.Contains(err.Error(), "linux/riscv64") || !strings.Contains(err.Error(), "linux/arm64/v8") {
		t.Errorf("no match: %v, want an error naming the wanted and offered platforms", err)
	}
	_, err = SelectManifest(&v1.IndexManifest{Manifests: []v1.Descriptor{indexEntry("1", "linux", "arm", "v7")}}, v1.Platform{OS: "linux", Architecture: "arm", Variant: "v6"})
	if err == nil {
		t.Error("an arm/v7 image was picked for an arm/v6 host")
	}
}

func TestHostPlatform(t *testing.T) {
	p := HostPlatform()
	if p.OS != "linux" || p.Architecture == "" {
		t.Errorf("HostPlatform() = %v", p)
	}
}

func TestAuthRedacted(t *testing.T) {
	a := &Auth{Username: "u", Password: "hunter2hunter2"}
	if strings.Contains(a.String()+a.GoString(), "hunter2") {
		t.Error("Auth prints its password")
	}
	err := redact(errFromString("token hunter2hunter2 rejected"), a.secrets())
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("redact left the secret: %v", err)
	}
}

type errFromString string

func (e errFromString) Error() string { return string(e) }
