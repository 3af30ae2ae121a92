package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"sigs.k8s.io/yaml"
)

// defaultCrictlConfig is where crictl keeps its client config; berth reads
// its runtime-endpoint so that on a node set up for crictl (containerd,
// CRI-O) berth talks to the same runtime without flags.
const defaultCrictlConfig = "/etc/crictl.yaml"

// endpointHelp is the resolution order, as --help says it.
const endpointHelp = "The runtime endpoint is the first of: --socket, $BERTH_SOCKET, $CONTAINER_RUNTIME_ENDPOINT,\n" +
	"runtime-endpoint in crictl's config ($CRI_CONFIG_FILE or /etc/crictl.yaml), " + defaultSocket + ".\n" +
	"So berth drives containerd or CRI-O nodes set up for crictl, too."

// endpoint is the runtime's address and where it came from, so an error
// about it can say which setting to fix.
type endpoint struct {
	addr   string // unix:///path
	source string // "--socket", "$BERTH_SOCKET", "/etc/crictl.yaml", "default"
}

// path is the socket's file path.
func (e endpoint) path() string { return strings.TrimPrefix(e.addr, "unix://") }

// from says where the endpoint came from, for messages; empty for the
// default.
func (e endpoint) from() string {
	if e.source == "default" {
		return ""
	}
	return " (from " + e.source + ")"
}

// resolveEndpoint picks the endpoint: flag, then BERTH_SOCKET, then
// CONTAINER_RUNTIME_ENDPOINT, then crictl's config file, then the default.
// getenv is os.Getenv in the program.
func resolveEndpoint(flag string, getenv func(string) string) (endpoint, error) {
	var e endpoint
	switch {
	case flag != "":
		e = endpoint{flag, "--socket"}
	case getenv("BERTH_SOCKET") != "":
		e = endpoint{getenv("BERTH_SOCKET"), "$BERTH_SOCKET"}
	case getenv("CONTAINER_RUNTIME_ENDPOINT") != "":
		e = endpoint{getenv("CONTAINER_RUNTIME_ENDPOINT"), "$CONTAINER_RUNTIME_ENDPOINT"}
	default:
		path := getenv("CRI_CONFIG_FILE")
		if path == "" {
			path = defaultCrictlConfig
		}
		addr, err := crictlEndpoint(path)
		if err != nil {
			return endpoint{}, err
		}
		if addr != "" {
			e = endpoint{addr, path}
		} else {
			e = endpoint{defaultSocket, "default"}
		}
	}
	addr, err := normalizeEndpoint(e.addr)
	if err != nil {
		return endpoint{}, fmt.Errorf("endpoint %q%s: %w", e.addr, e.from(), err)
	}
	e.addr = addr
	return e, nil
}

// normalizeEndpoint accepts unix:///path and a bare /path.
func normalizeEndpoint(s string) (string, error) {
	switch {
	case strings.HasPrefix(s, "/"):
		return "unix://" + s, nil
	case strings.HasPrefix(s, "unix:///"):
		return s, nil
	case strings.HasPrefix(s, "unix://"):
		return "", errors.New("want an absolute path: unix:///path/to.sock")
	}
	return "", errors.New("only unix sockets are supported: unix:///path/to.sock or /path/to.sock")
}

// crictlEndpoint reads runtime-endpoint from crictl's config file at path;
// "" when the file or the key is absent.
func crictlEndpoint(path string) (string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading crictl's config: %w", err)
	}
	var cfg struct {
		RuntimeEndpoint string `json:"runtime-endpoint"`
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		return "", fmt.Errorf("crictl's config %s: %w", path, err)
	}
	return cfg.RuntimeEndpoint, nil
}
