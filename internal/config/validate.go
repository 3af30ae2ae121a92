package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/berth-project/berth/internal/errdefs"
)

// handlerName is what Kubernetes allows as a RuntimeClass handler (a DNS
// label), so every configured handler is one the kubelet can name.
var handlerName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// Validate checks every setting and reports all problems at once, each
// naming its TOML key, so an operator fixes the file in one go.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key string, val any, want string) {
		errs = append(errs, fmt.Errorf("%s %q: want %s", key, fmt.Sprint(val), want))
	}
	abs := func(key, val string, emptyOK bool) {
		if (val == "" && !emptyOK) || (val != "" && !filepath.IsAbs(val)) {
			bad(key, val, "an absolute path")
		}
	}

	abs("root", c.Root, false)
	abs("state_dir", c.StateDir, false)
	abs("socket", c.Socket, false)
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.LogLevel) {
		bad("log_level", c.LogLevel, "debug, info, warn or error")
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("log_format", c.LogFormat, "text or json")
	}
	abs("conmon", c.Conmon, true)
	switch c.CgroupDriverSetting {
	case "", "cgroupfs", "systemd":
	default:
		bad("cgroup_driver", c.CgroupDriverSetting, `cgroupfs, systemd or "" (detect)`)
	}
	if p := c.DefaultCgroupParent; c.CgroupDriver() == "systemd" {
		if !filepath.IsAbs(p) && !strings.HasSuffix(p, ".slice") {
			bad("default_cgroup_parent", p, "a systemd slice such as berth.slice, or an absolute cgroup path")
		}
	} else {
		abs("default_cgroup_parent", p, false)
	}
	if !c.RestrictOOMScoreAdj.valid() {
		bad("restrict_oom_score_adj", c.RestrictOOMScoreAdj, "auto, true or false")
	}
	if c.UncollectedResultTTL.Duration <= 0 {
		bad("uncollected_result_ttl", c.UncollectedResultTTL.Duration, `a positive duration such as "5m"`)
	}
	if c.MemoryTrimAfter.Duration < 0 {
		bad("memory_trim_after", c.MemoryTrimAfter.Duration, `a duration such as "3s", or "0s" for never`)
	}
	if c.ExecSyncMaxOutput <= 0 {
		bad("exec_sync_max_output", c.ExecSyncMaxOutput, "a positive number of bytes")
	}

	if len(c.Runtimes) == 0 {
		errs = append(errs, errors.New("runtimes: want at least one [runtimes.<name>] table"))
	}
	if _, ok := c.Runtimes[c.DefaultRuntime]; !ok {
		bad("default_runtime", c.DefaultRuntime, "one of the configured runtimes: "+strings.Join(c.runtimeNames(), ", "))
	}
	for _, name := range c.runtimeNames() {
		rt := c.Runtimes[name]
		key := "runtimes." + name
		if !handlerName.MatchString(name) {
			bad(key, name, "a handler name of lower-case letters, digits and '-' (a DNS label, as RuntimeClass requires)")
		}
		// A relative path with a slash would depend on berthd's working dir.
		if rt.Path == "" || (strings.Contains(rt.Path, "/") && !filepath.IsAbs(rt.Path)) {
			bad(key+".path", rt.Path, "an absolute path or a bare name found on PATH")
		}
		abs(key+".root", rt.Root, true)
		for i, a := range rt.Args {
			if a == "" {
				bad(fmt.Sprintf("%s.args[%d]", key, i), a, "a non-empty argument")
			}
		}
		for field, patterns := range map[string][]string{"pod_annotations": rt.PodAnnotations, "container_annotations": rt.ContainerAnnotations} {
			for i, p := range patterns {
				if !validAnnotationPattern(p) {
					bad(fmt.Sprintf("%s.%s[%d]", key, field, i), p, `a glob such as "example.com/*" (path.Match syntax)`)
				}
			}
		}
	}

	abs("network.conf_dir", c.Network.ConfDir, false)
	if len(c.Network.BinDirs) == 0 {
		errs = append(errs, errors.New("network.bin_dirs: want at least one directory of CNI plugins"))
	}
	for i, d := range c.Network.BinDirs {
		abs(fmt.Sprintf("network.bin_dirs[%d]", i), d, false)
	}
	if p, err := netip.ParsePrefix(c.Network.DefaultSubnet); err != nil || p.Masked() != p || p.Bits() > p.Addr().BitLen()-2 {
		bad("network.default_subnet", c.Network.DefaultSubnet, "a network in CIDR form with room for hosts, such as 10.88.0.0/16")
	}
	if b := c.Network.DefaultBridge; b == "" || len(b) > 15 || strings.ContainsAny(b, "/: \t\n") || b == "." || b == ".." {
		bad("network.default_bridge", b, "an interface name of 1 to 15 characters without '/', ':' or spaces")
	}

	if err := checkAddress(c.Streaming.Address, false); err != nil {
		bad("streaming.address", c.Streaming.Address, err.Error())
	}
	if (c.Streaming.TLSCert == "") != (c.Streaming.TLSKey == "") {
		errs = append(errs, errors.New("streaming.tls_cert and streaming.tls_key: want both set (TLS) or both empty (plain HTTP)"))
	}
	abs("streaming.tls_cert", c.Streaming.TLSCert, true)
	abs("streaming.tls_key", c.Streaming.TLSKey, true)

	if c.Images.MaxConcurrentDownloads < 1 {
		bad("images.max_concurrent_downloads", c.Images.MaxConcurrentDownloads, "1 or more")
	}
	if c.Images.PullProgressTimeout.Duration < 0 {
		bad("images.pull_progress_timeout", c.Images.PullProgressTimeout.Duration, `a duration such as "1m", or "0s" for none`)
	}
	abs("images.registry_config_dir", c.Images.RegistryConfigDir, false)
	if c.Images.MaxLayerUnpackedBytes < 1<<20 {
		bad("images.max_layer_unpacked_bytes", c.Images.MaxLayerUnpackedBytes, "a number of bytes, at least 1048576 (1 MiB)")
	}
	if c.Images.MaxLayerEntries < 1000 {
		bad("images.max_layer_entries", c.Images.MaxLayerEntries, "a number of entries, at least 1000")
	}
	for i, img := range c.Images.PinnedImages {
		if !validImageRef(img) {
			bad(fmt.Sprintf("images.pinned_images[%d]", i), img, "an image reference (name[:tag], name@sha256:<digest>) or image id sha256:<64 hex digits>")
		}
	}

	if err := checkAddress(c.Metrics.Address, true); err != nil {
		bad("metrics.address", c.Metrics.Address, err.Error())
	}
	// The sections' own packages know their settings.
	errs = append(errs, c.NRI.Validate(), c.CDI.Validate())
	return errors.Join(errs...)
}

var imageID = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// validImageRef accepts what the image store resolves: a full image id or
// a reference as docker and containerd parse it.
func validImageRef(ref string) bool {
	if imageID.MatchString(ref) {
		return true
	}
	if ref == "" || strings.TrimSpace(ref) != ref {
		return false
	}
	_, err := name.ParseReference(ref, name.WeakValidation)
	return err == nil
}

// checkAddress accepts host:port with a numeric port (0 picks a free one).
func checkAddress(addr string, emptyOK bool) error {
	want := errors.New(`host:port such as "127.0.0.1:10010"`)
	if addr == "" {
		if emptyOK {
			return nil
		}
		return want
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return want
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n > 65535 {
		return want
	}
	return nil
}

// validAnnotationPattern accepts the globs spec.FilterAnnotations matches
// with (path.Match).
func validAnnotationPattern(p string) bool {
	if p == "" {
		return false
	}
	_, err := path.Match(p, "")
	return err == nil
}

func (c *Config) runtimeNames() []string {
	return slices.Sorted(maps.Keys(c.Runtimes))
}

func notFoundHandler(handler string, names []string) error {
	return errdefs.NotFound(fmt.Sprintf("runtime handler %q is not configured (configured: %s)", handler, strings.Join(names, ", ")))
}
