package kubelet

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/berth-project/berth/test/e2e/framework"
)

// /stats/summary carries CPU, memory, filesystem and network for every
// container and pod, both with kubelet's default stats path (container
// stats from CRI, pod cgroup stats from cAdvisor) and with the
// PodAndContainerStatsFromCRI feature gate (everything from CRI
// ListPodSandboxStats); kubelet's /run and /containerLogs endpoints reach
// ExecSync and the CRI log file.
func TestStatsSummaryAndRun(t *testing.T) {
	t.Run("default", func(t *testing.T) { testStatsSummaryAndRun(t, false) })
	t.Run("PodAndContainerStatsFromCRI", func(t *testing.T) { testStatsSummaryAndRun(t, true) })
}

func testStatsSummaryAndRun(t *testing.T, fromCRI bool) {
	opts := envOptions{}
	if fromCRI {
		opts.KubeletConfig = "featureGates:\n  PodAndContainerStatsFromCRI: true\n"
	}
	e := newEnv(t, opts)
	e.apply("busy", podYAML("busy", `  containers:
  - name: spin
    image: {{image}}
    command: ["sh", "-c", "while true; do echo x > /dev/null; done"]
  - name: idle
    image: {{image}}
    command: ["sh", "-c", "echo hello; exec sleep 3600"]
`))
	p := e.running("busy")

	type cpu struct {
		UsageNanoCores       *uint64 `json:"usageNanoCores"`
		UsageCoreNanoSeconds *uint64 `json:"usageCoreNanoSeconds"`
	}
	type mem struct {
		WorkingSetBytes *uint64 `json:"workingSetBytes"`
		UsageBytes      *uint64 `json:"usageBytes"`
	}
	type fs struct {
		UsedBytes     *uint64 `json:"usedBytes"`
		CapacityBytes *uint64 `json:"capacityBytes"`
	}
	type summary struct {
		Pods []struct {
			PodRef  struct{ Name, Namespace, UID string } `json:"podRef"`
			CPU     *cpu
			Memory  *mem
			Network *struct {
				Interfaces []struct {
					Name    string
					RxBytes *uint64 `json:"rxBytes"`
				}
			}
			Containers []struct {
				Name   string
				CPU    *cpu
				Memory *mem
				Rootfs *fs
				Logs   *fs
			}
			EphemeralStorage *fs `json:"ephemeral-storage"`
		}
	}
	var last string
	noNetLogged := false
	e.eventually(90*time.Second, "complete /stats/summary for the pod", func() error {
		b, err := e.k.get("/stats/summary")
		if err != nil {
			return err
		}
		last = string(b)
		var s summary
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		for _, ps := range s.Pods {
			if ps.PodRef.Namespace != namespace {
				continue
			}
			var missing []string
			if ps.CPU == nil || ps.CPU.UsageNanoCores == nil || *ps.CPU.UsageNanoCores == 0 {
				missing = append(missing, "pod cpu")
			}
			if ps.Memory == nil || ps.Memory.WorkingSetBytes == nil {
				missing = append(missing, "pod memory")
			}
			if ps.Network == nil || len(ps.Network.Interfaces) == 0 {
				if fromCRI {
					missing = append(missing, "pod network")
				} else if !noNetLogged {
					// kubelet's default path takes a pod's network
					// only from cAdvisor entries labelled by its
					// containerd/CRI-O/Docker handlers, which no
					// other CRI runtime can feed (docs/kubelet.md).
					t.Log("known gap: no pod network stats on kubelet's default stats path")
					noNetLogged = true
				}
			}
			if ps.EphemeralStorage == nil || ps.EphemeralStorage.UsedBytes == nil {
				missing = append(missing, "pod ephemeral-storage")
			}
			if len(ps.Containers) != 2 {
				missing = append(missing, fmt.Sprintf("2 containers (has %d)", len(ps.Containers)))
			}
			for _, c := range ps.Containers {
				if c.CPU == nil || c.CPU.UsageNanoCores == nil || (c.Name == "spin" && *c.CPU.UsageNanoCores == 0) {
					missing = append(missing, c.Name+" cpu")
				}
				if c.Memory == nil || c.Memory.WorkingSetBytes == nil || *c.Memory.WorkingSetBytes == 0 {
					missing = append(missing, c.Name+" memory")
				}
				if c.Rootfs == nil || c.Rootfs.UsedBytes == nil || c.Rootfs.CapacityBytes == nil {
					missing = append(missing, c.Name+" rootfs")
				}
				if c.Logs == nil || c.Logs.UsedBytes == nil || c.Logs.CapacityBytes == nil {
					missing = append(missing, c.Name+" logs")
				}
			}
			if len(missing) > 0 {
				return fmt.Errorf("missing %s", strings.Join(missing, ", "))
			}
			return nil
		}
		return fmt.Errorf("pod not in the summary")
	})
	if t.Failed() {
		t.Logf("last /stats/summary: %s", last)
	}

	// POST /run/<namespace>/<pod>/<container>?cmd=… is ExecSync (kubelet
	// splits cmd at spaces).
	code, body, err := e.k.secure("POST", fmt.Sprintf("/run/%s/%s/idle?cmd=%s", namespace, p.Metadata.Name,
		url.QueryEscape("cat /etc/hostname")), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := p.Metadata.Name + "\n"; code != 200 || string(body) != want {
		t.Errorf("kubelet /run: %d %q, want 200 %q", code, body, want)
	}
	// /exec/<namespace>/<pod>/<container> streams (SPDY) through kubelet to
	// berthd's Exec.
	u, err := url.Parse(fmt.Sprintf("https://127.0.0.1:%d/exec/%s/%s/idle?command=sh&command=-c&command=%s&input=1&output=1&error=1",
		e.k.Port, namespace, p.Metadata.Name, url.QueryEscape("read x; echo got-$x; echo to-stderr >&2")))
	if err != nil {
		t.Fatal(err)
	}
	ex, err := remotecommand.NewSPDYExecutor(&rest.Config{TLSClientConfig: rest.TLSClientConfig{Insecure: true}}, http.MethodPost, u)
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr strings.Builder
	if err := ex.StreamWithContext(framework.Ctx(t), remotecommand.StreamOptions{
		Stdin: strings.NewReader("hello\n"), Stdout: &stdout, Stderr: &stderr}); err != nil {
		t.Errorf("kubelet /exec: %v", err)
	}
	if stdout.String() != "got-hello\n" || stderr.String() != "to-stderr\n" {
		t.Errorf("kubelet /exec: stdout %q, stderr %q; want \"got-hello\\n\", \"to-stderr\\n\"", stdout.String(), stderr.String())
	}

	// /containerLogs reads the CRI log file kubelet had berthd write.
	code, body, err = e.k.secure("GET", fmt.Sprintf("/containerLogs/%s/%s/idle", namespace, p.Metadata.Name), nil)
	if err != nil {
		t.Fatal(err)
	}
	if code != 200 || string(body) != "hello\n" {
		t.Errorf("kubelet /containerLogs: %d %q, want 200 \"hello\\n\"", code, body)
	}
}
