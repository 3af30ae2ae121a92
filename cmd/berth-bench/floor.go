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

// runcFloor times `runc run --detach` of busybox `sleep 3600` with runc's
// default spec, n times (each followed by an untimed `runc delete
// --force`): what starting the container costs with no runtime around it.
func runcFloor(runc, workDir string, n int, rec *recorder) error {
	dir := filepath.Join(workDir, "runc-floor")
	defer os.RemoveAll(dir)
	bundle, root := filepath.Join(dir, "bundle"), filepath.Join(dir, "root")
	rootfs := filepath.Join(bundle, "rootfs")
	for _, d := range []string{"bin", "proc", "dev", "sys", "tmp"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			return err
		}
	}
	bb, err := os.ReadFile(busyboxBinary)
	if err != nil {
		return fmt.Errorf("the floor needs %s (Debian's busybox-static): %w", busyboxBinary, err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), bb, 0o755); err != nil {
		return err
	}
	if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", "sleep")); err != nil {
		return err
	}
	if out, err := exec.Command(runc, "spec", "--bundle", bundle).CombinedOutput(); err != nil {
		return fmt.Errorf("runc spec: %v: %s", err, out)
	}
	cfgPath := filepath.Join(bundle, "config.json")
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		return err
	}
	var spec map[string]any
	if err := json.Unmarshal(data, &spec); err != nil {
		return fmt.Errorf("runc spec wrote %s: %w", cfgPath, err)
	}
	proc, _ := spec["process"].(map[string]any)
	if proc == nil {
		return fmt.Errorf("runc spec wrote no process in %s", cfgPath)
	}
	proc["args"] = []string{"/bin/sleep", "3600"}
	proc["terminal"] = false
	if data, err = json.Marshal(spec); err != nil {
		return err
	}
	if err := os.WriteFile(cfgPath, data, 0o644); err != nil {
		return err
	}
	for i := range n {
		id := fmt.Sprintf("berth-bench-floor-%d-%d", os.Getpid(), i)
		// stdio stays /dev/null: the detached container inherits it, and
		// a pipe would keep the command from returning.
		t0 := time.Now()
		err := exec.Command(runc, "--root", root, "run", "--detach", "--bundle", bundle, id).Run()
		d := time.Since(t0)
		if err != nil {
			_ = exec.Command(runc, "--root", root, "delete", "--force", id).Run()
			return fmt.Errorf("runc run: %w", err)
		}
		rec.add("runc run --detach (busybox sleep, runc's default spec)", d)
		if out, err := exec.Command(runc, "--root", root, "delete", "--force", id).CombinedOutput(); err != nil {
			return fmt.Errorf("runc delete: %v: %s", err, out)
		}
	}
	return nil
}
