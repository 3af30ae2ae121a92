package runtime

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The spec berth generates is runc's; gVisor reads some of it differently.
// runscAdjustSpec rewrites a sub-container's bundle config before `runsc
// create`, so the pod behaves as under runc.

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
	changed, err := runscAdjust(&s, utsNamespaceName)
	if err != nil || !changed {
		return err
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
