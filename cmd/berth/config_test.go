package main

import (
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestDecodePodConfig(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		wantErr string
	}{
		{name: "json", doc: `{
  "metadata": {"name": "nginx", "namespace": "default", "uid": "u1", "attempt": 1},
  "log_directory": "/tmp/logs",
  "labels": {"app": "web"},
  "linux": {"security_context": {"namespace_options": {"network": 2}}}
}`},
		{name: "yaml", doc: `
metadata:
  name: nginx
  namespace: default
  uid: u1
  attempt: 1
log_directory: /tmp/logs
labels:
  app: web
linux:
  security_context:
    namespace_options:
      network: 2
`},
		{name: "unknown field", doc: `{"metadata": {"name": "x"}, "log_dir": "/tmp"}`, wantErr: `unknown field "log_dir"`},
		{name: "wrong type", doc: `metadata: {attempt: "one"}`, wantErr: "cannot unmarshal"},
		{name: "bad yaml", doc: "metadata: [", wantErr: "yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cfg runtimeapi.PodSandboxConfig
			err := decodeConfig([]byte(tt.doc), &cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			md := cfg.GetMetadata()
			if md.GetName() != "nginx" || md.GetNamespace() != "default" || md.GetUid() != "u1" || md.GetAttempt() != 1 ||
				cfg.GetLogDirectory() != "/tmp/logs" || cfg.GetLabels()["app"] != "web" ||
				cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() != runtimeapi.NamespaceMode_NODE {
				t.Errorf("decoded %v", &cfg)
			}
		})
	}
}

func TestDecodeContainerConfig(t *testing.T) {
	doc := `
metadata: {name: web}
image: {image: busybox}
command: [sh, -c]
args: ["echo $A"]
envs:
  - {key: A, value: "1 2"}
log_path: web/0.log
`
	var cfg runtimeapi.ContainerConfig
	if err := decodeConfig([]byte(doc), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.GetImage().GetImage() != "busybox" || len(cfg.GetCommand()) != 2 || cfg.GetArgs()[0] != "echo $A" ||
		len(cfg.GetEnvs()) != 1 || string(cfg.GetEnvs()[0].GetValue()) != "1 2" || cfg.GetLogPath() != "web/0.log" {
		t.Errorf("decoded %v", &cfg)
	}
}
