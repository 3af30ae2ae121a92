package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

func TestObserveAndScrape(t *testing.T) {
	ObserveRPC("/runtime.v1.RuntimeService/Version", time.Millisecond, codes.OK) // not installed: no-op
	m := New(Sources{
		Pods:       func() map[string]int { return map[string]int{"ready": 2} },
		Containers: func() map[string]int { return map[string]int{"running": 3, "exited": 1} },
	})
	m.Install()
	defer active.Store(nil)
	ObserveRPC("/runtime.v1.RuntimeService/Version", 2*time.Millisecond, codes.OK)
	ObserveRPC("/runtime.v1.RuntimeService/ContainerStatus", time.Millisecond, codes.NotFound)
	ObservePull(1<<20, 3*time.Second)

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	page := string(body)
	for _, want := range []string{
		`berth_cri_request_duration_seconds_count{method="Version"} 1`,
		`berth_cri_request_errors_total{code="NotFound",method="ContainerStatus"} 1`,
		`berth_image_pull_bytes_total 1.048576e+06`,
		`berth_image_pull_duration_seconds_count 1`,
		`berth_pods{state="ready"} 2`,
		`berth_containers{state="running"} 3`,
		`go_goroutines`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("metrics page lacks %q", want)
		}
	}
	if strings.Contains(page, `errors_total{code="OK"`) {
		t.Error("successful calls counted as errors")
	}
}
