package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// parsePublish reads -p values, docker's [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp|sctp]
// (CONTAINER_PORT alone publishes it on the same host port).
func parsePublish(vals []string) ([]*runtimeapi.PortMapping, error) {
	var out []*runtimeapi.PortMapping
	for _, v := range vals {
		spec, proto, _ := strings.Cut(v, "/")
		pm := &runtimeapi.PortMapping{}
		switch strings.ToLower(proto) {
		case "", "tcp":
			pm.Protocol = runtimeapi.Protocol_TCP
		case "udp":
			pm.Protocol = runtimeapi.Protocol_UDP
		case "sctp":
			pm.Protocol = runtimeapi.Protocol_SCTP
		default:
			return nil, fmt.Errorf("-p %q: protocol must be tcp, udp or sctp", v)
		}
		// An IPv6 host address is bracketed: [::1]:8080:80.
		var host string
		if strings.HasPrefix(spec, "[") {
			end := strings.Index(spec, "]:")
			if end < 0 {
				return nil, fmt.Errorf("-p %q: want [HOST_IP:]HOST_PORT:CONTAINER_PORT[/PROTO]", v)
			}
			host, spec = spec[1:end], spec[end+2:]
		}
		parts := strings.Split(spec, ":")
		if host == "" && len(parts) == 3 {
			host, parts = parts[0], parts[1:]
		}
		var hostPort, ctrPort string
		switch len(parts) {
		case 1:
			hostPort, ctrPort = parts[0], parts[0]
		case 2:
			hostPort, ctrPort = parts[0], parts[1]
		default:
			return nil, fmt.Errorf("-p %q: want [HOST_IP:]HOST_PORT:CONTAINER_PORT[/PROTO]", v)
		}
		if host != "" && net.ParseIP(host) == nil {
			return nil, fmt.Errorf("-p %q: %q is not an IP address", v, host)
		}
		hp, err1 := strconv.ParseUint(hostPort, 10, 16)
		cp, err2 := strconv.ParseUint(ctrPort, 10, 16)
		if err1 != nil || err2 != nil || hp == 0 || cp == 0 {
			return nil, fmt.Errorf("-p %q: ports must be numbers from 1 to 65535", v)
		}
		pm.HostIp, pm.HostPort, pm.ContainerPort = host, int32(hp), int32(cp)
		out = append(out, pm)
	}
	return out, nil
}

// parseVolumes reads -v values, HOST_PATH:CONTAINER_PATH[:ro|rw]. The host
// path is made absolute (the daemon runs elsewhere); docker's named volumes
// have no CRI counterpart.
func parseVolumes(vals []string) ([]*runtimeapi.Mount, error) {
	var out []*runtimeapi.Mount
	for _, v := range vals {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
			return nil, fmt.Errorf("-v %q: want HOST_PATH:CONTAINER_PATH[:ro]", v)
		}
		m := &runtimeapi.Mount{ContainerPath: parts[1]}
		if len(parts) == 3 {
			switch parts[2] {
			case "ro":
				m.Readonly = true
			case "rw":
			default:
				return nil, fmt.Errorf("-v %q: the option must be ro or rw", v)
			}
		}
		if !strings.HasPrefix(parts[0], "/") && !strings.HasPrefix(parts[0], ".") {
			return nil, fmt.Errorf("-v %q: %q is not a path; named volumes are not supported, give a host path (./%s for a relative one)", v, parts[0], parts[0])
		}
		if !filepath.IsAbs(m.ContainerPath) {
			return nil, fmt.Errorf("-v %q: the container path must be absolute", v)
		}
		host, err := filepath.Abs(parts[0])
		if err != nil {
			return nil, fmt.Errorf("-v %q: %w", v, err)
		}
		m.HostPath = host
		out = append(out, m)
	}
	return out, nil
}

// readEnvFiles reads --env-file files in docker's format: KEY=VALUE or KEY
// lines (KEY alone passes our value), blank lines and # comments skipped.
func readEnvFiles(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("--env-file: %w", err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimLeft(sc.Text(), " \t")
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if k, _, _ := strings.Cut(line, "="); k == "" || strings.ContainsAny(k, " \t") {
				return nil, fmt.Errorf("--env-file %s:%d: %q is not KEY=VALUE", p, n, line)
			}
			out = append(out, line)
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("--env-file %s: %w", p, err)
		}
	}
	return out, nil
}

// pullPolicy is --pull: always, missing (the default) or never.
type pullPolicy string

func parsePullPolicy(s string) (pullPolicy, error) {
	switch p := pullPolicy(s); p {
	case "always", "missing", "never":
		return p, nil
	}
	return "", fmt.Errorf("--pull %q: want always, missing or never", s)
}
