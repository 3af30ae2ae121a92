package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// eventWords names CRI container event types for people.
var eventWords = map[runtimeapi.ContainerEventType]string{
	runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT: "created",
	runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT: "started",
	runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT: "stopped",
	runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT: "deleted",
}

func eventsCmd(a *app) *cobra.Command {
	var o struct {
		container, pod, since string
		count                 int
	}
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Stream container lifecycle events (CRI GetContainerEvents)",
		Long: "Print each container event as it happens: time, event, container, its name, pod,\n" +
			"and for a stop the exit code and reason. -o json prints one JSON object per line.\n" +
			"Runs until interrupted, or until --count events were printed.\n\n" +
			"--since also prints the events berthd replays to a new stream that happened at or after\n" +
			"that time. berthd keeps no event history: it replays only the events it found while\n" +
			"reconciling at start (exits that happened while it was down), for 5 minutes after it\n" +
			"started. Without --since those are skipped and only new events print.",
		Args:    cobra.NoArgs,
		Example: "  berth events --pod nginx\n  berth events -o json --count 1\n  berth events --since 10m     # after a berthd restart: the exits it found",
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := a.format("table")
			if f == "yaml" {
				return errors.New("events: -o yaml is not a stream format; use table or json")
			}
			// Events from before the stream opened are berthd's replay.
			opened := time.Now()
			var since time.Time
			if o.since != "" {
				var err error
				if since, err = parseSince(o.since, opened); err != nil {
					return err
				}
			}
			var podID, ctrID string
			if o.pod != "" || o.container != "" {
				ctx, cancel, err := a.ctx(cmd.Context())
				if err != nil {
					return err
				}
				if o.pod != "" {
					ids, err := a.resolvePods(ctx, []string{o.pod})
					if err != nil {
						cancel()
						return err
					}
					podID = ids[0]
				}
				if o.container != "" {
					ids, err := a.resolveContainers(ctx, []string{o.container})
					if err != nil {
						cancel()
						return err
					}
					ctrID = ids[0]
				}
				cancel()
			}
			if err := a.connect(); err != nil {
				return err
			}
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			stream, err := a.rt.GetContainerEvents(ctx, &runtimeapi.GetEventsRequest{})
			if err != nil {
				return fmt.Errorf("events: %w", err)
			}
			n := 0
			for {
				ev, err := stream.Recv()
				if err == io.EOF {
					return nil
				}
				if err != nil {
					if c := status.Code(err); ctx.Err() == nil && (c == codes.Canceled || c == codes.DeadlineExceeded) {
						// berthd sees our deadline (sent as grpc-timeout) and
						// may reset the stream a moment before our own timer
						// ends ctx: give it that moment.
						select {
						case <-ctx.Done():
						case <-time.After(200 * time.Millisecond):
						}
					}
					if ctx.Err() != nil {
						return nil
					}
					return fmt.Errorf("events: %w", err)
				}
				if (podID != "" && ev.GetPodSandboxStatus().GetId() != podID) || (ctrID != "" && ev.GetContainerId() != ctrID) {
					continue
				}
				if at := time.Unix(0, ev.GetCreatedAt()); at.Before(opened) && (since.IsZero() || at.Before(since)) {
					continue
				}
				if err := printEvent(a.stdout, f, ev); err != nil {
					return err
				}
				if n++; o.count > 0 && n >= o.count {
					return nil
				}
			}
		},
	}
	cmd.Flags().StringVar(&o.pod, "pod", "", "only events of this pod's containers (ID prefix or name)")
	cmd.Flags().StringVar(&o.container, "container", "", "only events of this container (ID prefix or name)")
	cmd.Flags().IntVar(&o.count, "count", 0, "exit after this many events (0: run until interrupted)")
	cmd.Flags().StringVar(&o.since, "since", "", "also print replayed events from this time on: a duration back from now (10m) or an RFC 3339 time")
	return cmd
}

// parseSince reads --since: a duration back from now, or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("events: --since %q is neither a duration (10m) nor an RFC 3339 time (2006-01-02T15:04:05Z)", s)
}

// printEvent writes one event as a line: a table-like line or compact JSON.
func printEvent(w io.Writer, format string, ev *runtimeapi.ContainerEventResponse) error {
	if strings.HasPrefix(format, goTemplatePrefix) {
		var buf bytes.Buffer
		if err := printDoc(&buf, format, ev); err != nil {
			return err
		}
		if !bytes.HasSuffix(buf.Bytes(), []byte("\n")) {
			buf.WriteByte('\n')
		}
		_, err := w.Write(buf.Bytes())
		return err
	}
	if format == "json" {
		raw, err := protoJSON(ev)
		if err != nil {
			return err
		}
		var buf []byte
		if buf, err = json.Marshal(raw); err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", buf)
		return err
	}
	var self *runtimeapi.ContainerStatus
	for _, st := range ev.GetContainersStatuses() {
		if st.GetId() == ev.GetContainerId() {
			self = st
		}
	}
	pod := ev.GetPodSandboxStatus().GetMetadata()
	podName := shortID(ev.GetPodSandboxStatus().GetId())
	if pod.GetName() != "" {
		podName = pod.GetNamespace() + "/" + pod.GetName()
	}
	line := fmt.Sprintf("%s  %-8s %s  %s  pod=%s", time.Unix(0, ev.GetCreatedAt()).Format(time.RFC3339),
		eventWords[ev.GetContainerEventType()], shortID(ev.GetContainerId()), orWord(self.GetMetadata().GetName(), "-"), podName)
	if ev.GetContainerEventType() == runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT && self != nil {
		line += fmt.Sprintf(" exit=%d", self.GetExitCode())
		if self.GetReason() != "" {
			line += " reason=" + self.GetReason()
		}
	}
	_, err := fmt.Fprintln(w, line)
	return err
}
