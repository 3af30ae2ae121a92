package metrics

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestSteps(t *testing.T) {
	var nilSteps *Steps
	nilSteps.Done("x") // optional call sites: no-op
	m := New(Sources{})
	m.Install()
	defer active.Store(nil)

	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := StartSteps("RunPodSandbox")
	s.Done("network")
	s.Done("record")
	s.Log(context.Background(), log, "pod create steps", slog.String("pod", "p1"))
	line := buf.String()
	for _, want := range []string{"pod create steps", "pod=p1", "took=", "steps.network=", "steps.record="} {
		if !strings.Contains(line, want) {
			t.Errorf("log line %q lacks %q", line, want)
		}
	}

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`berth_cri_step_duration_seconds_count{method="RunPodSandbox",step="network"} 1`,
		`berth_cri_step_duration_seconds_count{method="RunPodSandbox",step="record"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics page lacks %q", want)
		}
	}

	buf.Reset()
	quiet := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	s.Log(context.Background(), quiet, "not logged")
	if buf.Len() != 0 {
		t.Errorf("logged at info level: %q", buf.String())
	}
}
