// Command nriplugin is the NRI plugin berth's e2e suite runs against
// berthd. It adjusts every container it sees (an env var and a bind mount),
// appends each event it receives to a file so tests can check the order,
// and fails or hangs on the event tests ask for, by flag or per pod or
// container through annotations:
//
//	berth.test/nri-fail: CreateContainer   (fail that event)
//	berth.test/nri-hang: StartContainer    (never answer that event)
//
// It runs external (connecting to -socket) or pre-registered: launched by
// berthd from the plugin dir, where it takes its settings as YAML with the
// flag names as keys from the plugin config dir (e.g. 10-berthtest.conf).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
	"sigs.k8s.io/yaml"
)

// Annotations that make the plugin misbehave for one pod or container.
const (
	FailAnnotation = "berth.test/nri-fail"
	HangAnnotation = "berth.test/nri-hang"
)

// Options are the plugin's settings, from flags or its config.
type Options struct {
	Events   string        `json:"events"`    // file each event is appended to
	Env      string        `json:"env"`       // KEY=VALUE added to every container
	MountSrc string        `json:"mount-src"` // host path bind-mounted read-only
	MountDst string        `json:"mount-dst"` // into every container here
	FailOn   string        `json:"fail-on"`   // event to fail for everyone
	HangOn   string        `json:"hang-on"`   // event to hang in for everyone
	HangFor  time.Duration `json:"hang-for"`  // how long a hang lasts
}

type plugin struct {
	mu   sync.Mutex
	opts Options
	log  *slog.Logger
}

func main() {
	var o Options
	var socket, name, idx string
	flag.StringVar(&socket, "socket", api.DefaultSocketPath, "NRI socket to connect to")
	flag.StringVar(&name, "name", "berthtest", "plugin name")
	flag.StringVar(&idx, "idx", "50", "plugin index (invocation order)")
	flag.StringVar(&o.Events, "events", "", "append each event to this file")
	flag.StringVar(&o.Env, "env", "BERTH_NRI_TEST=adjusted", "KEY=VALUE to add to every container; empty: none")
	flag.StringVar(&o.MountSrc, "mount-src", "", "host path to bind-mount read-only into every container; empty: none")
	flag.StringVar(&o.MountDst, "mount-dst", "/nri-test", "where the mount goes in the container")
	flag.StringVar(&o.FailOn, "fail-on", "", "event to fail for every pod and container")
	flag.StringVar(&o.HangOn, "hang-on", "", "event to hang in for every pod and container")
	flag.DurationVar(&o.HangFor, "hang-for", time.Hour, "how long a hang lasts")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	p := &plugin{opts: o, log: log}
	opts := []stub.Option{stub.WithOnClose(func() { log.Info("connection closed"); os.Exit(0) })}
	// Launched by the runtime, the stub takes name, index and connection
	// from the environment it was given.
	if os.Getenv(api.PluginSocketEnvVar) == "" {
		opts = append(opts, stub.WithSocketPath(socket), stub.WithPluginName(name), stub.WithPluginIdx(idx))
	}
	s, err := stub.New(p, opts...)
	if err != nil {
		log.Error("create plugin stub", "err", err)
		os.Exit(1)
	}
	if err := s.Run(context.Background()); err != nil {
		log.Error("plugin stopped", "err", err)
		os.Exit(1)
	}
}

// Configure takes settings from the runtime's plugin config, if any.
func (p *plugin) Configure(_ context.Context, config, runtime, version string) (api.EventMask, error) {
	p.log.Info("configured", "runtime", runtime, "version", version)
	if strings.TrimSpace(config) == "" {
		return 0, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := yaml.Unmarshal([]byte(config), &p.opts); err != nil {
		return 0, fmt.Errorf("plugin config: %w", err)
	}
	return 0, nil
}

func (p *plugin) options() Options {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.opts
}

// event records ev and then fails or hangs if asked to, by option or by
// an annotation of the pod or container.
func (p *plugin) event(ev string, pod *api.PodSandbox, ctr *api.Container) error {
	o := p.options()
	subject := pod.GetNamespace() + "/" + pod.GetName()
	if ctr != nil {
		subject += "/" + ctr.GetName()
	}
	if o.Events != "" {
		if err := appendLine(o.Events, ev+" "+subject); err != nil {
			p.log.Error("record event", "err", err)
		}
	}
	asked := func(key string) bool {
		for _, a := range []map[string]string{pod.GetAnnotations(), ctr.GetAnnotations()} {
			if slices.Contains(strings.Split(a[key], ","), ev) {
				return true
			}
		}
		return false
	}
	if o.HangOn == ev || asked(HangAnnotation) {
		p.log.Info("hanging as asked", "event", ev, "for", subject)
		time.Sleep(o.HangFor)
	}
	if o.FailOn == ev || asked(FailAnnotation) {
		return fmt.Errorf("berth test plugin fails %s for %s as asked", ev, subject)
	}
	return nil
}

func appendLine(path, line string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(line + "\n"); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (p *plugin) Synchronize(_ context.Context, pods []*api.PodSandbox, ctrs []*api.Container) ([]*api.ContainerUpdate, error) {
	o := p.options()
	if o.Events != "" {
		if err := appendLine(o.Events, fmt.Sprintf("Synchronize pods=%d containers=%d", len(pods), len(ctrs))); err != nil {
			p.log.Error("record event", "err", err)
		}
	}
	return nil, nil
}

func (p *plugin) RunPodSandbox(_ context.Context, pod *api.PodSandbox) error {
	return p.event("RunPodSandbox", pod, nil)
}
func (p *plugin) UpdatePodSandbox(_ context.Context, pod *api.PodSandbox, _, _ *api.LinuxResources) error {
	return p.event("UpdatePodSandbox", pod, nil)
}
func (p *plugin) StopPodSandbox(_ context.Context, pod *api.PodSandbox) error {
	return p.event("StopPodSandbox", pod, nil)
}
func (p *plugin) RemovePodSandbox(_ context.Context, pod *api.PodSandbox) error {
	return p.event("RemovePodSandbox", pod, nil)
}

func (p *plugin) CreateContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	if err := p.event("CreateContainer", pod, ctr); err != nil {
		return nil, nil, err
	}
	o := p.options()
	adj := &api.ContainerAdjustment{}
	if k, v, ok := strings.Cut(o.Env, "="); ok && k != "" {
		adj.AddEnv(k, v)
	}
	if o.MountSrc != "" {
		adj.AddMount(&api.Mount{Source: o.MountSrc, Destination: o.MountDst, Type: "bind", Options: []string{"rbind", "ro"}})
	}
	return adj, nil, nil
}

func (p *plugin) PostCreateContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	return p.event("PostCreateContainer", pod, ctr)
}
func (p *plugin) StartContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	return p.event("StartContainer", pod, ctr)
}
func (p *plugin) PostStartContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	return p.event("PostStartContainer", pod, ctr)
}
func (p *plugin) UpdateContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container, _ *api.LinuxResources) ([]*api.ContainerUpdate, error) {
	return nil, p.event("UpdateContainer", pod, ctr)
}
func (p *plugin) PostUpdateContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	return p.event("PostUpdateContainer", pod, ctr)
}
func (p *plugin) StopContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container) ([]*api.ContainerUpdate, error) {
	return nil, p.event("StopContainer", pod, ctr)
}
func (p *plugin) RemoveContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	return p.event("RemoveContainer", pod, ctr)
}
