package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/config"
)

// TestWarnBroadAnnotationPatterns: "*" and patterns without a literal
// prefix are warned about at start, naming the key; prefixed ones are not.
func TestWarnBroadAnnotationPatterns(t *testing.T) {
	cfg := config.Default()
	cfg.Runtimes = map[string]config.Runtime{
		"runc":  {Path: "runc", PodAnnotations: []string{"example.com/*", "*"}, ContainerAnnotations: []string{"*.gvisor.*"}},
		"runsc": {Path: "runsc", PodAnnotations: []string{"dev.gvisor.spec.mount.*"}, ContainerAnnotations: []string{"[a-z]*"}},
	}
	var buf bytes.Buffer
	warnBroadAnnotationPatterns(cfg, slog.New(slog.NewTextHandler(&buf, nil)))
	out := buf.String()
	for _, want := range []string{
		`key=runtimes.runc.pod_annotations[1] pattern=*`,
		`key=runtimes.runc.container_annotations[0] pattern=*.gvisor.*`,
		`key=runtimes.runsc.container_annotations[0] pattern=[a-z]*`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no warning with %s in:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "level=WARN"); n != 3 {
		t.Errorf("%d warnings, want 3:\n%s", n, out)
	}
	for _, quiet := range []string{"example.com/*", "dev.gvisor.spec.mount.*"} {
		if strings.Contains(out, "pattern="+quiet) {
			t.Errorf("warned about %s", quiet)
		}
	}
}
