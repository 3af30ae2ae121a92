// Package cdi resolves Container Device Interface devices for containers:
// the names a container asks for (CRI's CDI_devices, and the cdi.k8s.io/
// annotations kubelet's device-plugin path sets) are looked up in the CDI
// specs that device drivers write to the spec directories, and the edits
// they define (device nodes, mounts, env, hooks) are applied to the
// container's OCI spec. A device no spec defines fails the container
// instead of it starting without its device.
package cdi

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	cdi "tags.cncf.io/container-device-interface/pkg/cdi"
	"tags.cncf.io/container-device-interface/pkg/parser"

	"github.com/berth-project/berth/internal/errdefs"
)

// Config is the [cdi] section of berth.toml, in internal/config's style so
// it can be held there as is.
type Config struct {
	SpecDirs []string `toml:"spec_dirs" doc:"directories of CDI specs, later ones taking precedence for a device defined twice; watched, so specs drivers add or change are used without a restart"`
}

// DefaultConfig returns the CDI standard directories: static specs in
// /etc/cdi, generated ones (DRA drivers) in /var/run/cdi.
func DefaultConfig() Config {
	return Config{SpecDirs: slices.Clone(cdi.DefaultSpecDirs)}
}

// Validate checks the spec directories are absolute paths.
func (c Config) Validate() error {
	if len(c.SpecDirs) == 0 {
		return errors.New("cdi.spec_dirs: want at least one directory")
	}
	for _, d := range c.SpecDirs {
		if !filepath.IsAbs(d) {
			return fmt.Errorf("cdi.spec_dirs: %q is not an absolute path", d)
		}
	}
	return nil
}

// Resolver holds the spec cache. It refreshes itself when the spec
// directories change (fsnotify), so it is made once per daemon.
type Resolver struct {
	cache *cdi.Cache
	dirs  []string
	log   *slog.Logger
}

// New loads the specs in cfg.SpecDirs and starts watching them. Missing
// directories are fine (watched for creation); specs that fail to parse
// are logged and skipped, as one broken vendor file must not take every
// device down.
func New(cfg Config, log *slog.Logger) (*Resolver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	c, err := cdi.NewCache(cdi.WithSpecDirs(cfg.SpecDirs...), cdi.WithAutoRefresh(true))
	if err != nil {
		return nil, fmt.Errorf("CDI cache: %w", err)
	}
	r := &Resolver{cache: c, dirs: slices.Clone(cfg.SpecDirs), log: log.With("component", "cdi")}
	r.logSpecErrors()
	return r, nil
}

func (r *Resolver) logSpecErrors() {
	for path, errs := range r.cache.GetErrors() {
		r.log.Warn("CDI spec or directory unusable", "path", path, "err", errors.Join(errs...))
	}
}

// Devices returns the CDI devices a container asks for: CDI_devices in
// order, then those named in cdi.k8s.io/ annotations, each once. A
// malformed name is an InvalidArgument error.
func Devices(c *runtimeapi.ContainerConfig) ([]string, error) {
	var out []string
	for _, d := range c.GetCDIDevices() {
		name := d.GetName()
		if _, _, _, err := parser.ParseQualifiedName(name); err != nil {
			return nil, errdefs.Invalid(fmt.Sprintf("CDI device %q: %v (want vendor.com/class=name)", name, err))
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	_, fromAnnotations, err := cdi.ParseAnnotations(c.GetAnnotations())
	if err != nil {
		return nil, errdefs.Invalid(fmt.Sprintf("CDI annotation (%s*): %v", cdi.AnnotationPrefix, err))
	}
	// Map order is random; sort so the spec comes out the same every time.
	slices.Sort(fromAnnotations)
	for _, name := range fromAnnotations {
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out, nil
}

// Inject applies the edits of devices to s in place. A device no spec
// defines is a FailedPrecondition error naming it (the driver has not
// written its spec, or the name is wrong); s is then left untouched.
func (r *Resolver) Inject(s *specs.Spec, devices []string) error {
	if len(devices) == 0 {
		return nil
	}
	unresolved, err := r.cache.InjectDevices(s, devices...)
	if len(unresolved) != 0 {
		// A driver may have written its spec a moment ago and the watch
		// not caught up yet: rescan once before failing.
		if cerr := r.cache.Configure(cdi.WithSpecDirs(r.dirs...)); cerr != nil {
			r.log.Warn("CDI rescan", "err", cerr)
		}
		r.logSpecErrors()
		unresolved, err = r.cache.InjectDevices(s, devices...)
	}
	if len(unresolved) != 0 {
		return errdefs.Precondition(fmt.Sprintf("unknown CDI device %s: no CDI spec in %s defines it",
			strings.Join(unresolved, ", "), strings.Join(r.dirs, ", ")))
	}
	if err != nil {
		return fmt.Errorf("apply CDI devices %s: %w", strings.Join(devices, ", "), err)
	}
	return nil
}

// InjectContainer resolves the devices c asks for and applies them to s,
// returning the device names applied.
func (r *Resolver) InjectContainer(s *specs.Spec, c *runtimeapi.ContainerConfig) ([]string, error) {
	devices, err := Devices(c)
	if err != nil {
		return nil, err
	}
	return devices, r.Inject(s, devices)
}

// Known lists every device the loaded specs define.
func (r *Resolver) Known() []string { return r.cache.ListDevices() }
