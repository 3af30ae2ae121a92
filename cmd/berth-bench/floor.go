package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// busyboxBinary is the static busybox the bench image is built from, so
// that the floor runs the same binary as the pods.
const busyboxBinary = "/bin/busybox"

// floorStep names a floor run.
const floorStep = "runc run --detach (busybox sleep, runc's default spec)"

// runcFloor times `runc run --detach` of busybox `sleep 3600` with runc's
// default spec, n times (each followed by an untimed `runc delete
// --force`): what starting the container costs with no runtime around it.
func runcFloor(runc, workDir string, n int, rec *recorder) error {
	f, err := newFloor(runc, workDir)
	if err != nil {
		return err
	}
	defer f.close()
	for range n {
		if err := f.run(rec, floorStep); err != nil {
			return err
		}
	}
	return nil
}

// floor is the floor's bundle, made once, for runs of it one at a time.
type floor struct {
	runc, dir, bundle, root string
	seq                     int
}

func newFloor(runc, workDir string) (f *floor, err error) {
	dir, err := os.MkdirTemp(workDir, "runc-floor-")
	if err != nil {
		return nil, err
	}
	f = &floor{runc: runc, dir: dir, bundle: filepath.Join(dir, "bundle"), root: filepath.Join(dir, "root")}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	rootfs := filepath.Join(f.bundle, "rootfs")
	for _, d := range []string{"bin", "proc", "dev", "sys", "tmp"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			return nil, err
		}
	}
	bb, err := os.ReadFile(busyboxBinary)
	if err != nil {
		return nil, fmt.Errorf("the floor needs %s (Debian's busybox-static): %w", busyboxBinary, err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), bb, 0o755); err != nil {
		return nil, err
	}
	if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", "sleep")); err != nil {
		return nil, err
	}
	if out, err := exec.Command(runc, "spec", "--bundle", f.bundle).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("runc spec: %v: %s", err, out)
	}
	cfgPath := filepath.Join(f.bundle, "config.json")
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, err
	}
	var spec map[string]any
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("runc spec wrote %s: %w", cfgPath, err)
	}
	proc, _ := spec["process"].(map[string]any)
	if proc == nil {
		return nil, fmt.Errorf("runc spec wrote no process in %s", cfgPath)
	}
	proc["args"] = []string{"/bin/sleep", "3600"}
	proc["terminal"] = false
	if data, err = json.Marshal(spec); err != nil {
		return nil, err
	}
	if err := os.WriteFile(cfgPath, data, 0o644); err != nil {
		return nil, err
	}
	return f, nil
}

// run times one `runc run --detach` as step, then deletes the container.
func (f *floor) run(rec *recorder, step string) error {
	f.seq++
	id := fmt.Sprintf("berth-bench-floor-%d-%d", os.Getpid(), f.seq)
	// stdio stays /dev/null: the detached container inherits it, and
	// a pipe would keep the command from returning.
	t0 := time.Now()
	err := exec.Command(f.runc, "--root", f.root, "run", "--detach", "--bundle", f.bundle, id).Run()
	d := time.Since(t0)
	if err != nil {
		_ = exec.Command(f.runc, "--root", f.root, "delete", "--force", id).Run()
		return fmt.Errorf("runc run: %w", err)
	}
	rec.add(step, d)
	if out, err := exec.Command(f.runc, "--root", f.root, "delete", "--force", id).CombinedOutput(); err != nil {
		return fmt.Errorf("runc delete: %v: %s", err, out)
	}
	return nil
}

func (f *floor) close() { os.RemoveAll(f.dir) }
