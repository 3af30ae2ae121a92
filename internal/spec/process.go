package spec

import (
	"path"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/errdefs"
)

// DefaultPath is PATH for processes whose image and config set none.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// WithProcessArgs merges the CRI command/args with the image entrypoint/cmd
// the way Docker and containerd do: a command replaces the entrypoint and
// drops the image cmd; args alone replace the cmd; neither runs
// entrypoint+cmd. An image entrypoint of [""] means "no entrypoint".
func WithProcessArgs(command, args, entrypoint, cmd []string) Opt {
	return func(s *specs.Spec) error {
		command := append([]string(nil), command...)
		args := append([]string(nil), args...)
		if len(command) == 0 {
			if len(args) == 0 {
				args = append(args, cmd...)
			}
			if !(len(entrypoint) == 1 && entrypoint[0] == "") {
				command = append(command, entrypoint...)
			}
		}
		if len(command) == 0 && len(args) == 0 {
			return errdefs.Invalid("no command specified: set command or args, or use an image with an entrypoint or cmd")
		}
		ensureProcess(s)
		s.Process.Args = append(command, args...)
		return nil
	}
}

// WithDefaultPathEnv adds DefaultPath unless PATH is already set; later
// WithEnv calls replace it in place.
func WithDefaultPathEnv() Opt {
	return func(s *specs.Spec) error {
		ensureProcess(s)
		for _, e := range s.Process.Env {
			if strings.HasPrefix(e, "PATH=") {
				return nil
			}
		}
		s.Process.Env = append(s.Process.Env, DefaultPath)
		return nil
	}
}

// WithEnv sets KEY=VALUE entries, replacing an existing KEY in place and
// appending new ones. An entry without "=" unsets KEY.
func WithEnv(env []string) Opt {
	return func(s *specs.Spec) error {
		ensureProcess(s)
		s.Process.Env = replaceOrAppendEnv(s.Process.Env, env)
		return nil
	}
}

func replaceOrAppendEnv(base, overrides []string) []string {
	out := append([]string(nil), base...)
	index := make(map[string]int, len(out))
	for i, e := range out {
		k, _, _ := strings.Cut(e, "=")
		index[k] = i
	}
	removed := make(map[int]bool)
	for _, e := range overrides {
		k, _, hasValue := strings.Cut(e, "=")
		i, exists := index[k]
		switch {
		case !hasValue:
			if exists {
				removed[i] = true
			}
		case exists:
			out[i] = e
			delete(removed, i)
		default:
			index[k] = len(out)
			out = append(out, e)
		}
	}
	if len(removed) == 0 {
		return out
	}
	kept := out[:0]
	for i, e := range out {
		if !removed[i] {
			kept = append(kept, e)
		}
	}
	return kept
}

// mergeEnv lists image env first so config env overrides it by key.
func mergeEnv(image []string, config []*runtimeapi.KeyValue) []string {
	env := append([]string(nil), image...)
	for _, kv := range config {
		env = append(env, kv.GetKey()+"="+string(kv.GetValue()))
	}
	return env
}

// WithWorkingDir uses the config's working dir (absolute: checked by
// ValidateContainer), else the image's, else "/".
func WithWorkingDir(config, image string) Opt {
	return func(s *specs.Spec) error {
		ensureProcess(s)
		switch {
		case config != "":
			s.Process.Cwd = path.Clean(config)
		case image != "":
			// Docker resolves a relative image WORKDIR against "/".
			s.Process.Cwd = path.Join("/", image)
		default:
			s.Process.Cwd = "/"
		}
		return nil
	}
}

// WithTerminal gives the process a terminal (CRI tty).
func WithTerminal(tty bool) Opt {
	return func(s *specs.Spec) error {
		ensureProcess(s)
		s.Process.Terminal = tty
		return nil
	}
}
