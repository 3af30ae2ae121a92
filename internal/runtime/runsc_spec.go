package runtime

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The spec berth generates is runc's; gVisor reads some of it differently.
// runscAdjustSpec rewrites the bundle config of a pod's sandbox or of a
// container joining it before `runsc create`, so the pod behaves as under
// runc.

// annotationContainerType is the CRI annotation that tells gVisor the pod's
// sandbox ("sandbox") from the containers joining it ("container").
const annotationContainerType = "io.kubernetes.cri.container-type"

// runscAdjustSpec applies the gVisor adjustments to the spec in bundle
// (config.json), rewriting it only when something changes.
func runscAdjustSpec(bundle string) error {
	p := filepath.Join(bundle, "config.json")
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("decode %s: %w", p, err)
	}
	if ignored := runscIgnoredSysctls(&s); len(ignored) > 0 {
		slog.Warn("gVisor ignores these sysctls of the container's spec", "bundle", bundle, "sysctls", ignored)
	}
	changed, err := runscAdjust(&s, utsNamespaceName)
	if err != nil {
		return err
	}
	if s.Annotations[annotationContainerType] == "container" {
		paths, err := runscPathMounts(&s, bundle)
		if err != nil {
			return err
		}
		changed = changed || paths
	}
	if !changed {
		return nil
	}
	out, err := json.Marshal(&s)
	if err != nil {
		return err
	}
	if err := os.WriteFile(p+".tmp", out, 0o600); err != nil {
		return err
	}
	return os.Rename(p+".tmp", p)
}

// runscAdjust changes s for gVisor and says whether it changed anything.
// utsName reads the host name of a UTS namespace file.
//
// Host name: gVisor gives every container of a sandbox the sandbox's own
// UTS namespace, named from the sandbox spec's hostname
// (runsc/boot/loader.go: kernel.NewUTSNamespace(args.Spec.Hostname, ...));
// it does not join a UTS namespace by path. berth's pause spec joins the
// pod's pinned UTS namespace, which carries the pod's host name, so the
// sandbox spec is given that name.
//
// PID namespace: a container that joins a PID namespace by path (the pod's
// shared one, pinned from the pause process; or a target container's) must
// join the sandbox's root PID namespace, where the pause process is PID 1
// and every container's processes are seen. gVisor matches a PID namespace
// path only against the paths of containers already in the sandbox and
// otherwise makes a new namespace (runsc/boot/loader.go, startSubcontainer:
// "PID namespace %q not found, running in new PID namespace"); a spec
// without a PID namespace joins the root one. The host file berth pins is
// the sandbox process's host namespace, which means nothing inside gVisor.
func runscAdjust(s *specs.Spec, utsName func(path string) (string, error)) (bool, error) {
	if s.Linux == nil {
		return false, nil
	}
	changed := false
	switch s.Annotations[annotationContainerType] {
	case "sandbox":
		for _, ns := range s.Linux.Namespaces {
			if ns.Type != specs.UTSNamespace || ns.Path == "" || s.Hostname != "" {
				continue
			}
			name, err := utsName(ns.Path)
			if err != nil {
				return false, fmt.Errorf("read the pod's host name: %w", err)
			}
			s.Hostname, changed = name, true
		}
	case "container":
		kept := s.Linux.Namespaces[:0]
		for _, ns := range s.Linux.Namespaces {
			if ns.Type == specs.PIDNamespace && ns.Path != "" {
				changed = true
				continue
			}
			kept = append(kept, ns)
		}
		s.Linux.Namespaces = kept
	}
	return changed, nil
}

// utsNamespaceName reads the host name of the UTS namespace at path, from
// a thread that joins it and is then thrown away.
func utsNamespaceName(path string) (string, error) {
	type result struct {
		name string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		// Never unlocked: the thread ends with the goroutine, so no
		// other goroutine runs in the joined namespace.
		goruntime.LockOSThread()
		f, err := os.Open(path)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWUTS); err != nil {
			ch <- result{err: fmt.Errorf("join UTS namespace %s: %w", path, err)}
			return
		}
		var u unix.Utsname
		if err := unix.Uname(&u); err != nil {
			ch <- result{err: err}
			return
		}
		ch <- result{name: unix.ByteSliceToString(u.Nodename[:])}
	}()
	r := <-ch
	return r.name, r.err
}

// runscIgnoredSysctls lists the spec's sysctls that runsc does not apply:
// it reads only these two from linux.sysctl (runsc/boot/loader.go,
// runsc/sandbox/sandbox.go).
func runscIgnoredSysctls(s *specs.Spec) []string {
	if s.Linux == nil {
		return nil
	}
	var out []string
	for k := range s.Linux.Sysctl {
		if k != "fs.nr_open" && k != "net.ipv6.conf.all.disable_ipv6" {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// runscMaskFile is the empty, mode 000 file in a container's bundle that
// is bind mounted over its masked files: reads find nothing, execve fails
// with EACCES, as over runc's /dev/null.
const runscMaskFile = "runsc-masked"

// runscPathMounts turns the spec's masked and read-only paths into mounts,
// which gVisor applies: runsc reads linux.maskedPaths and
// linux.readonlyPaths only to leave them out of its debug log
// (runsc/specutils/specutils.go, LogSpecCustomLogger), so without this they
// would mean nothing. Paths under /proc and /sys are left out: there gVisor
// serves its own procfs and sysfs, which expose no host data (kcore, keys,
// timer_list, sysrq-trigger... are absent or inert). A path that the image
// does not have is left out too, as runc does; a masked path that is a
// symlink in the image is masked as a file. It says whether it changed s.
func runscPathMounts(s *specs.Spec, bundle string) (bool, error) {
	if s.Linux == nil || s.Root == nil || (len(s.Linux.MaskedPaths) == 0 && len(s.Linux.ReadonlyPaths) == 0) {
		return false, nil
	}
	rootfs := s.Root.Path
	if !filepath.IsAbs(rootfs) {
		rootfs = filepath.Join(bundle, rootfs)
	}
	inSandboxFS := func(p string) bool {
		for _, fs := range []string{"/proc", "/sys"} {
			if p == fs || strings.HasPrefix(p, fs+"/") {
				return true
			}
		}
		return false
	}
	changed := false
	for _, p := range s.Linux.ReadonlyPaths {
		p = filepath.Clean(p)
		if !filepath.IsAbs(p) || inSandboxFS(p) {
			continue
		}
		if i := slices.IndexFunc(s.Mounts, func(m specs.Mount) bool { return filepath.Clean(m.Destination) == p }); i >= 0 {
			// A volume there: make it read-only itself.
			s.Mounts[i].Options = append(slices.DeleteFunc(s.Mounts[i].Options, func(o string) bool { return o == "rw" }), "ro")
			changed = true
			continue
		}
		if _, err := os.Lstat(filepath.Join(rootfs, p)); err != nil {
			continue
		}
		// A read-only view of the image's own directory or file, before
		// the volumes mounted below it.
		addMountBefore(s, specs.Mount{Destination: p, Type: "bind", Source: filepath.Join(rootfs, p), Options: []string{"rbind", "ro"}})
		changed = true
	}
	for _, p := range s.Linux.MaskedPaths {
		p = filepath.Clean(p)
		if !filepath.IsAbs(p) || inSandboxFS(p) {
			continue
		}
		// Lstat: a symlink's target is the image's, not the host's.
		fi, err := os.Lstat(filepath.Join(rootfs, p))
		if err != nil {
			continue
		}
		m := specs.Mount{Destination: p, Type: "tmpfs", Source: "tmpfs", Options: []string{"ro", "nosuid", "nodev", "noexec"}}
		if !fi.IsDir() {
			f := filepath.Join(bundle, runscMaskFile)
			if err := os.WriteFile(f, nil, 0); err != nil {
				return false, err
			}
			m = specs.Mount{Destination: p, Type: "bind", Source: f, Options: []string{"bind", "ro", "nosuid", "nodev", "noexec"}}
		}
		// Last: nothing mounted later may uncover it.
		s.Mounts = append(s.Mounts, m)
		changed = true
	}
	return changed, nil
}

// addMountBefore adds m before the first mount below its destination, so
// those stay visible on top of it.
func addMountBefore(s *specs.Spec, m specs.Mount) {
	i := slices.IndexFunc(s.Mounts, func(x specs.Mount) bool {
		return strings.HasPrefix(filepath.Clean(x.Destination), m.Destination+"/")
	})
	if i < 0 {
		s.Mounts = append(s.Mounts, m)
		return
	}
	s.Mounts = slices.Insert(s.Mounts, i, m)
}

// runscSandboxArgs are the extra runsc flags for creating the sandbox whose
// spec is in bundle: --network=host when the pod has no network namespace
// of its own and the handler's args choose no network mode.
func runscSandboxArgs(bundle string, handlerArgs []string) ([]string, error) {
	for _, a := range handlerArgs {
		if a == "--network" || strings.HasPrefix(a, "--network=") || a == "-network" || strings.HasPrefix(a, "-network=") {
			return nil, nil
		}
	}
	p := filepath.Join(bundle, "config.json")
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decode %s: %w", p, err)
	}
	if s.Linux != nil {
		for _, ns := range s.Linux.Namespaces {
			if ns.Type == specs.NetworkNamespace {
				return nil, nil
			}
		}
	}
	return []string{"--network=host"}, nil
}
