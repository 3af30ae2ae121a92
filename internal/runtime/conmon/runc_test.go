package conmon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"github.com/berth-project/berth/internal/errdefs"
)

// testRunc drives runc for these tests. The runtime package's driver
// imports this package, so the tests carry the few commands they need.
type testRunc struct{ path, root string }

func (r *testRunc) Name() string { return "runc" }

func (r *testRunc) Command() (string, []string) {
	return r.path, []string{"--root", r.root, "--log-format", "json"}
}

func (r *testRunc) run(ctx context.Context, args ...string) ([]byte, error) {
	_, global := r.Command()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, r.path, append(global, args...)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := r.Message(stderr.Bytes())
		if strings.Contains(msg, "does not exist") {
			return nil, fmt.Errorf("runc %s: %s: %w", args[0], msg, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("runc %s: %s: %w", args[0], msg, err)
	}
	return out, nil
}

func (r *testRunc) Delete(ctx context.Context, id string, force bool) error {
	args := []string{"delete"}
	if force {
		args = append(args, "--force")
	}
	_, err := r.run(ctx, append(args, id)...)
	if errdefs.IsNotFound(err) {
		return nil
	}
	return err
}

// Message: the msg of the last error-level JSON line, else the plain text.
func (r *testRunc) Message(log []byte) string {
	var msg string
	var plain []string
	for _, line := range bytes.Split(log, []byte("\n")) {
		line = bytes.TrimSpace(line)
		var l struct{ Level, Msg string }
		switch {
		case len(line) == 0:
		case line[0] == '{' && json.Unmarshal(line, &l) == nil && l.Level != "":
			if l.Level == "error" || l.Level == "fatal" {
				msg = l.Msg
			}
		default:
			plain = append(plain, string(line))
		}
	}
	if msg == "" {
		msg = strings.Join(plain, "; ")
	}
	return msg
}

func (r *testRunc) Start(ctx context.Context, id string) error {
	_, err := r.run(ctx, "start", id)
	return err
}

func (r *testRunc) Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error {
	args := []string{"kill"}
	if all {
		args = append(args, "--all")
	}
	_, err := r.run(ctx, append(args, id, strconv.Itoa(int(sig)))...)
	return err
}

type testState struct {
	ID     string `json:"id"`
	Pid    int    `json:"pid"`
	Status string `json:"status"`
}

func (r *testRunc) State(ctx context.Context, id string) (*testState, error) {
	out, err := r.run(ctx, "state", id)
	if err != nil {
		return nil, err
	}
	var st testState
	return &st, json.Unmarshal(out, &st)
}

func (r *testRunc) List(ctx context.Context) ([]testState, error) {
	out, err := r.run(ctx, "list", "--format", "json")
	if err != nil {
		return nil, err
	}
	var sts []testState
	return sts, json.Unmarshal(out, &sts)
}
