package sandbox

import (
	"fmt"
	"os"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// hostsFile is the pod's /etc/hosts for pods with their own network
// namespace. kubelet usually mounts its own managed hosts file over it; this
// one serves pods started by other clients.
func hostsFile(hostname string) string {
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::0\tip6-localnet\n")
	b.WriteString("fe00::0\tip6-mcastprefix\n")
	b.WriteString("fe00::1\tip6-allnodes\n")
	b.WriteString("fe00::2\tip6-allrouters\n")
	if hostname != "" {
		fmt.Fprintf(&b, "127.0.1.1\t%s\n", hostname)
	}
	return b.String()
}

// resolvConf renders a resolv.conf from the pod's DNS config.
func resolvConf(dns *runtimeapi.DNSConfig) string {
	var b strings.Builder
	if len(dns.GetSearches()) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(dns.GetSearches(), " "))
	}
	for _, s := range dns.GetServers() {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(dns.GetOptions()) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(dns.GetOptions(), " "))
	}
	return b.String()
}

// validateDNS rejects values that would inject extra lines into resolv.conf.
func validateDNS(dns *runtimeapi.DNSConfig) error {
	check := func(field string, vals []string) error {
		for _, v := range vals {
			if v == "" || strings.ContainsAny(v, "\n\r\x00") {
				return fmt.Errorf("dns_config.%s: invalid value %q", field, v)
			}
		}
		return nil
	}
	if err := check("servers", dns.GetServers()); err != nil {
		return err
	}
	if err := check("searches", dns.GetSearches()); err != nil {
		return err
	}
	return check("options", dns.GetOptions())
}

// podFiles holds the contents of the files every container of a pod mounts.
type podFiles struct {
	hostname, hosts, resolv string
}

// makePodFiles decides the contents of /etc/hostname, /etc/hosts and
// /etc/resolv.conf. Host-network pods see the host's own files, as in
// containerd; otherwise the DNS config is rendered, or the host's resolver
// config is copied when the pod has none.
func makePodFiles(cfg *runtimeapi.PodSandboxConfig, hostNetwork bool) (podFiles, error) {
	var f podFiles
	hostname := cfg.GetHostname()
	if hostNetwork {
		h, err := os.Hostname()
		if err != nil {
			return f, fmt.Errorf("read host hostname: %w", err)
		}
		hostname = h
	}
	f.hostname = hostname + "\n"
	if hostNetwork {
		hosts, err := os.ReadFile("/etc/hosts")
		if err != nil && !os.IsNotExist(err) {
			return f, fmt.Errorf("read host /etc/hosts: %w", err)
		}
		f.hosts = string(hosts)
	} else {
		f.hosts = hostsFile(hostname)
	}
	if dns := cfg.GetDnsConfig(); dns != nil {
		f.resolv = resolvConf(dns)
	} else {
		r, err := os.ReadFile("/etc/resolv.conf")
		if err != nil && !os.IsNotExist(err) {
			return f, fmt.Errorf("read host /etc/resolv.conf: %w", err)
		}
		f.resolv = string(r)
	}
	return f, nil
}
