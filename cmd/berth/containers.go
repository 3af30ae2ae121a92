package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func containerStateFilter(s string) (*runtimeapi.ContainerStateValue, error) {
	var st runtimeapi.ContainerState
	switch strings.ToLower(s) {
	case "":
		return nil, nil
	case "created", "container_created":
		st = runtimeapi.ContainerState_CONTAINER_CREATED
	case "running", "container_running":
		st = runtimeapi.ContainerState_CONTAINER_RUNNING
	case "exited", "container_exited":
		st = runtimeapi.ContainerState_CONTAINER_EXITED
	case "unknown", "container_unknown":
		st = runtimeapi.ContainerState_CONTAINER_UNKNOWN
	default:
		return nil, fmt.Errorf("--state %q: want created, running, exited or unknown", s)
	}
	return &runtimeapi.ContainerStateValue{State: st}, nil
}

func psCmd(a *app) *cobra.Command {
	var o struct {
		all              bool
		pod, name, state string
		id, image        string
		labels           []string
		quiet            bool
	}
	cmd := &cobra.Command{
		Use:     "ps",
		Short:   "List containers (running ones unless -a or --state)",
		Args:    cobra.NoArgs,
		Example: "  berth ps -a --pod nginx",
		RunE: func(cmd *cobra.Command, _ []string) error {
			state, err := containerStateFilter(o.state)
			if err != nil {
				return err
			}
			if state == nil && !o.all {
				state = &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}
			}
			labels, err := parseLabels(o.labels)
			if err != nil {
				return err
			}
			nameRE, err := compileFilter("name", o.name)
			if err != nil {
				return err
			}
			ctx, cancel, err := a.ctx(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			filter := &runtimeapi.ContainerFilter{State: state, LabelSelector: labels}
			if o.pod != "" {
				ids, err := a.resolvePods(ctx, []string{o.pod})
				if err != nil {
					return err
				}
				filter.PodSandboxId = ids[0]
			}
			resp, err := a.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: filter})
			if err != nil {
				return fmt.Errorf("listing containers: %w", err)
			}
			var ctrs []*runtimeapi.Container
			for _, c := range resp.GetContainers() {
				if (nameRE != nil && !nameRE.MatchString(c.GetMetadata().GetName())) || !strings.HasPrefix(c.GetId(), o.id) {
					continue
				}
				ctrs = append(ctrs, c)
			}
			if o.image != "" {
				ctrs = a.filterByImage(ctx, ctrs, o.image)
			}
			sort.SliceStable(ctrs, func(i, j int) bool { return ctrs[i].GetCreatedAt() > ctrs[j].GetCreatedAt() })

			if o.quiet {
				for _, c := range ctrs {
					fmt.Fprintln(a.stdout, c.GetId())
				}
				return nil
			}
			if f := a.format("table"); f != "table" {
				return printDoc(a.stdout, f, &runtimeapi.ListContainersResponse{Containers: ctrs})
			}
			podNames, err := a.podNames(ctx)
			if err != nil {
				return err
			}
			images := a.imageNames(ctx, ctrs)
			now := time.Now()
			t := newTable(a.stdout)
			fmt.Fprintln(t, "CONTAINER\tIMAGE\tCREATED\tSTATE\tNAME\tATTEMPT\tPOD ID\tPOD")
			for _, c := range ctrs {
				fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", a.tid(c.GetId()), images(c), ago(c.GetCreatedAt(), now),
					containerState(c.GetState()), c.GetMetadata().GetName(), c.GetMetadata().GetAttempt(),
					a.tid(c.GetPodSandboxId()), podNames[c.GetPodSandboxId()])
			}
			return t.Flush()
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.all, "all", "a", false, "list containers in every state")
	f.StringVar(&o.pod, "pod", "", "only containers of this pod (ID prefix or name)")
	f.StringVar(&o.name, "name", "", "only containers whose name matches this regular expression")
	f.StringVar(&o.state, "state", "", "only containers in this state: created, running, exited or unknown")
	f.StringVar(&o.id, "id", "", "only containers whose ID starts with this")
	f.StringVar(&o.image, "image", "", "only containers of this image (reference, as in images, or image ID prefix)")
	f.StringArrayVar(&o.labels, "label", nil, "only containers with this label (key=value, repeatable)")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print only container IDs")
	return cmd
}

// filterByImage keeps the containers whose image is ref: the same
// reference (busybox = docker.io/library/busybox:latest), or an image whose
// ID starts with ref, or one of whose names is ref.
func (a *app) filterByImage(ctx context.Context, ctrs []*runtimeapi.Container, ref string) []*runtimeapi.Container {
	want := map[string]bool{normalizeRef(ref): true}
	if resp, err := a.img.ListImages(ctx, &runtimeapi.ListImagesRequest{}); err == nil {
		for _, im := range resp.GetImages() {
			id := strings.TrimPrefix(im.GetId(), "sha256:")
			match := strings.HasPrefix(id, strings.TrimPrefix(ref, "sha256:"))
			for _, n := range append(im.GetRepoTags(), im.GetRepoDigests()...) {
				if normalizeRef(n) == normalizeRef(ref) {
					match = true
				}
			}
			if match {
				want[im.GetId()] = true
				for _, n := range append(im.GetRepoTags(), im.GetRepoDigests()...) {
					want[normalizeRef(n)] = true
				}
			}
		}
	}
	var out []*runtimeapi.Container
	for _, c := range ctrs {
		img := c.GetImage().GetImage()
		if want[c.GetImageRef()] || want[img] || (!strings.HasPrefix(img, "sha256:") && want[normalizeRef(img)]) {
			out = append(out, c)
		}
	}
	return out
}

// podNames maps pod sandbox IDs to pod names for the POD column.
func (a *app) podNames(ctx context.Context) (map[string]string, error) {
	resp, err := a.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	m := make(map[string]string, len(resp.GetItems()))
	for _, p := range resp.GetItems() {
		m[p.GetId()] = p.GetMetadata().GetName()
	}
	return m, nil
}

// imageNames returns how the IMAGE column names a container's image: the
// reference it was created with, or, when the runtime reports an image ID,
// that image's first tag (one ListImages call, only when needed).
func (a *app) imageNames(ctx context.Context, ctrs []*runtimeapi.Container) func(*runtimeapi.Container) string {
	var tags map[string]string
	for _, c := range ctrs {
		if strings.HasPrefix(c.GetImage().GetImage(), "sha256:") {
			tags = map[string]string{}
			if resp, err := a.img.ListImages(ctx, &runtimeapi.ListImagesRequest{}); err == nil {
				for _, im := range resp.GetImages() {
					if len(im.GetRepoTags()) > 0 {
						tags[im.GetId()] = im.GetRepoTags()[0]
					}
				}
			}
			break
		}
	}
	return func(c *runtimeapi.Container) string {
		ref := c.GetImage().GetImage()
		if ref == "" {
			ref = c.GetImageRef()
		}
		if t, ok := tags[ref]; ok {
			return t
		}
		if strings.HasPrefix(ref, "sha256:") {
			return shortID(ref)
		}
		return ref
	}
}

func inspectCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "inspect CONTAINER...",
		Short:   "Show the status of containers",
		Args:    cobra.MinimumNArgs(1),
		Example: "  berth inspect web",
		RunE: forEachID(a, a.resolveContainers, func(ctx context.Context, id string) error {
			resp, err := a.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
			if err != nil {
				return fmt.Errorf("container %s: %w", shortID(id), err)
			}
			return a.printStatus(resp.GetStatus(), resp.GetInfo(), func() { printContainerSummary(a, resp.GetStatus()) })
		}),
	}
}

func printContainerSummary(a *app, s *runtimeapi.ContainerStatus) {
	now := time.Now()
	t := newTable(a.stdout)
	fmt.Fprintf(t, "ID:\t%s\n", s.GetId())
	fmt.Fprintf(t, "Name:\t%s\n", s.GetMetadata().GetName())
	fmt.Fprintf(t, "Attempt:\t%d\n", s.GetMetadata().GetAttempt())
	fmt.Fprintf(t, "State:\t%s\n", containerState(s.GetState()))
	fmt.Fprintf(t, "Image:\t%s\n", s.GetImage().GetImage())
	fmt.Fprintf(t, "Created:\t%s\n", ago(s.GetCreatedAt(), now))
	if s.GetStartedAt() != 0 {
		fmt.Fprintf(t, "Started:\t%s\n", ago(s.GetStartedAt(), now))
	}
	if s.GetState() == runtimeapi.ContainerState_CONTAINER_EXITED {
		fmt.Fprintf(t, "Finished:\t%s\n", ago(s.GetFinishedAt(), now))
		fmt.Fprintf(t, "Exit Code:\t%d\n", s.GetExitCode())
		fmt.Fprintf(t, "Reason:\t%s\n", s.GetReason())
	}
	fmt.Fprintf(t, "Log Path:\t%s\n", s.GetLogPath())
	t.Flush()
}

func createCmd(a *app) *cobra.Command {
	var pull bool
	cmd := &cobra.Command{
		Use:   "create POD CONTAINER_CONFIG POD_CONFIG",
		Short: "Create a container in a pod from JSON or YAML config files",
		Long: "Create a container in POD from a CRI ContainerConfig and the pod's PodSandboxConfig\n" +
			"(JSON or YAML, see docs/CLI.md); prints the container's ID. --pull pulls a missing image first",
		Args:    cobra.ExactArgs(3),
		Example: "  berth create 1f0e3c container-config.json pod-config.json",
		RunE: func(cmd *cobra.Command, args []string) error {
			var ccfg runtimeapi.ContainerConfig
			if err := loadConfig(args[1], a.stdin, &ccfg); err != nil {
				return err
			}
			var pcfg runtimeapi.PodSandboxConfig
			if err := loadConfig(args[2], a.stdin, &pcfg); err != nil {
				return err
			}
			ctx, cancel, err := a.ctx(cmd.Context())
			if err != nil {
				return err
			}
			defer cancel()
			ids, err := a.resolvePods(ctx, args[:1])
			if err != nil {
				return err
			}
			if pull {
				pctx, pcancel, err := a.longCtx(cmd.Context(), 0)
				if err != nil {
					return err
				}
				err = a.ensureImage(pctx, ccfg.GetImage().GetImage(), &pcfg)
				pcancel()
				if err != nil {
					return err
				}
			}
			resp, err := a.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
				PodSandboxId: ids[0], Config: &ccfg, SandboxConfig: &pcfg,
			})
			if err != nil {
				return fmt.Errorf("creating container: %w", err)
			}
			fmt.Fprintln(a.stdout, resp.GetContainerId())
			return nil
		},
	}
	cmd.Flags().BoolVar(&pull, "pull", false, "pull the image first if it is not present")
	return cmd
}

func startCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "start CONTAINER...",
		Short:   "Start created containers",
		Args:    cobra.MinimumNArgs(1),
		Example: "  berth start web",
		RunE: forEachID(a, a.resolveContainers, func(ctx context.Context, id string) error {
			if _, err := a.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
				return fmt.Errorf("starting container %s: %w", shortID(id), err)
			}
			fmt.Fprintln(a.stdout, id)
			return nil
		}),
	}
}

func stopCmd(a *app) *cobra.Command {
	var secs int64
	cmd := &cobra.Command{
		Use:   "stop CONTAINER...",
		Short: "Stop running containers (SIGTERM, then SIGKILL after -t seconds)",
		Long: "Stop containers: the stop signal (SIGTERM unless the image says otherwise), then SIGKILL\n" +
			"after -t seconds (default 10)",
		Args:    cobra.MinimumNArgs(1),
		Example: "  berth stop -t 5 web",
		RunE: func(cmd *cobra.Command, args []string) error {
			if secs < 0 {
				return fmt.Errorf("-t %d: want seconds >= 0", secs)
			}
			// The stop deadline adds the grace period to --timeout, so it
			// derives from the command's context, not the per-verb one.
			return forEachID(a, a.resolveContainers, func(_ context.Context, id string) error {
				if err := a.stopContainer(cmd.Context(), id, secs); err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, id)
				return nil
			})(cmd, args)
		},
	}
	cmd.Flags().Int64VarP(&secs, "time", "t", 10, "seconds to wait for the container to stop before killing it")
	return cmd
}

// stopContainer stops id, allowing the grace period on top of --timeout.
func (a *app) stopContainer(parent context.Context, id string, secs int64) error {
	ctx, cancel := context.WithTimeout(parent, a.timeout+time.Duration(secs)*time.Second)
	defer cancel()
	if _, err := a.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: secs}); err != nil {
		return fmt.Errorf("stopping container %s: %w", shortID(id), err)
	}
	return nil
}

func rmCmd(a *app) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm CONTAINER...",
		Short:   "Remove containers",
		Args:    cobra.MinimumNArgs(1),
		Example: "  berth rm -f web",
		RunE: func(cmd *cobra.Command, args []string) error {
			// -f stops with stopContainer, whose deadline derives from the
			// command's context (see stop).
			return forEachID(a, a.resolveContainers, func(ctx context.Context, id string) error {
				if force {
					if err := a.stopContainer(cmd.Context(), id, 0); err != nil {
						return err
					}
				} else {
					st, err := a.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
					if err != nil {
						return fmt.Errorf("container %s: %w", shortID(id), err)
					}
					if st.GetStatus().GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING {
						return fmt.Errorf("container %s is running: stop it first, or use -f", shortID(id))
					}
				}
				if _, err := a.rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
					return fmt.Errorf("removing container %s: %w", shortID(id), err)
				}
				fmt.Fprintln(a.stdout, id)
				return nil
			})(cmd, args)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill the container first if it is running")
	return cmd
}
