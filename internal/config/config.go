// Package config holds berthd's settings: one TOML file plus a directory of
// drop-ins, every setting with a default, validated once at start so the
// daemon never runs half-configured.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/berth-project/berth/internal/cdi"
	"github.com/berth-project/berth/internal/nri"
)

// Locations used when berthd is given no flags.
const (
	DefaultPath      = "/etc/berth/berth.toml"
	DefaultDropInDir = "/etc/berth/berth.d"
)

// Config is the whole of berthd's configuration. The doc tags are the
// one-line comments WriteDefault puts above each setting, so the code and the
// generated file cannot drift apart.
type Config struct {
	Root                 string             `toml:"root" doc:"persistent data: records, images, writable layers"`
	StateDir             string             `toml:"state_dir" doc:"runtime state, lost at reboot: namespaces, bundles, runc root, exit files; pods in user namespaces keep their rootfs mount points in <state_dir>-userns beside it"`
	Socket               string             `toml:"socket" doc:"CRI gRPC socket the kubelet connects to (created 0660, root-owned)"`
	LogLevel             string             `toml:"log_level" doc:"daemon log level: debug, info, warn or error"`
	LogFormat            string             `toml:"log_format" doc:"daemon log format: text or json"`
	Conmon               string             `toml:"conmon" doc:"the per-container monitor: berth-monitor, or conmon (both speak conmon's protocol); empty: berth-monitor next to berthd, else berth-monitor or conmon on PATH"`
	CgroupDriverSetting  string             `toml:"cgroup_driver" doc:"cgroupfs or systemd; empty: systemd when /run/systemd/system exists, else cgroupfs"`
	DefaultCgroupParent  string             `toml:"default_cgroup_parent" doc:"cgroup parent for pods whose config names none (a path, or a .slice with systemd)"`
	RestrictOOMScoreAdj  AutoBool           `toml:"restrict_oom_score_adj" doc:"clamp oom_score_adj to berthd's own: auto (when berthd lacks CAP_SYS_RESOURCE), true or false"`
	UncollectedResultTTL Duration           `toml:"uncollected_result_ttl" doc:"how long a create result nobody collected is kept for the kubelet's retry before cleanup"`
	MemoryTrimAfter      Duration           `toml:"memory_trim_after" doc:"once no state-changing CRI call has run for this long (the end of a burst of pod starts, stops or pulls), give the heap's free memory and the pages of code the burst ran back to the host (docs/PERFORMANCE.md); 0s: never"`
	ExecSyncMaxOutput    int                `toml:"exec_sync_max_output" doc:"ExecSync output cap in bytes, stdout and stderr together (never more than a 16 MiB CRI response holds)"`
	DefaultRuntime       string             `toml:"default_runtime" doc:"OCI runtime handler used when the pod names no RuntimeClass handler"`
	Runtimes             map[string]Runtime `toml:"runtimes" doc:"OCI runtime handlers by RuntimeClass handler name; a drop-in changes only the keys it sets"`
	Network              Network            `toml:"network" doc:"pod networking"`
	Streaming            Streaming          `toml:"streaming" doc:"the HTTP server behind exec, attach and port-forward URLs"`
	Images               Images             `toml:"images" doc:"image pulls and storage"`
	Metrics              Metrics            `toml:"metrics" doc:"Prometheus metrics"`
	NRI                  nri.Config         `toml:"nri" doc:"Node Resource Interface: node plugins hooking pod and container lifecycle events (docs/nri.md)"`
	CDI                  cdi.Config         `toml:"cdi" doc:"Container Device Interface: device names (CDI_devices, cdi.k8s.io annotations) resolved from vendor specs (docs/cdi.md)"`
}

// Runtime is one OCI runtime handler ([runtimes.<name>]).
type Runtime struct {
	Path                         string          `toml:"path" doc:"runtime binary; a bare name is searched on PATH"`
	Root                         string          `toml:"root" doc:"runtime state root (--root); empty: <state_dir>/runtimes/<name>"`
	Args                         []string        `toml:"args" doc:"extra global arguments put before every runtime command"`
	PrivilegedWithoutHostDevices bool            `toml:"privileged_without_host_devices" doc:"privileged containers of this handler do not get the host's devices"`
	PodAnnotations               []string        `toml:"pod_annotations" doc:"pod annotations passed into the OCI specs of the pod's containers, as globs such as \"example.com/*\" (* stops at /; keys under io.kubernetes.cri. never pass); empty: none"`
	ContainerAnnotations         []string        `toml:"container_annotations" doc:"container annotations passed into its OCI spec, as globs like pod_annotations; empty: none"`
	Features                     RuntimeFeatures `toml:"features" doc:"what the runtime supports beyond the OCI basics"`
}

// RuntimeFeatures says which optional OCI features a handler supports.
type RuntimeFeatures struct {
	RecursiveReadOnlyMounts bool `toml:"recursive_read_only_mounts" doc:"supports rro mounts (runc >= 1.1 on Linux >= 5.12)"`
	UserNamespaces          bool `toml:"user_namespaces" doc:"supports pods in user namespaces (also detected: runc >= 1.2 with idmapped mounts on a kernel that idmaps tmpfs and the layers' filesystem)"`
}

// Network configures pod networking.
type Network struct {
	ConfDir        string   `toml:"conf_dir" doc:"CNI network configurations; the first one in name order is used"`
	BinDirs        []string `toml:"bin_dirs" doc:"directories searched for CNI plugin binaries"`
	DefaultSubnet  string   `toml:"default_subnet" doc:"subnet of the built-in bridge network used when conf_dir holds no config"`
	DefaultBridge  string   `toml:"default_bridge" doc:"bridge interface of the built-in network"`
	BuiltinNetwork bool     `toml:"builtin_network" doc:"use the built-in bridge network while conf_dir holds no config; false: NetworkReady stays false until a CNI config is installed"`
	DefaultRoute   bool     `toml:"default_route" doc:"pods on the built-in network get a default route via the bridge"`
	// BuiltinInProcess: see internal/network/inprocess.go.
	BuiltinInProcess bool `toml:"builtin_inprocess" doc:"run the built-in network inside berthd (same bridge, veth, routes and host-local lease store as the bridge and host-local plugins, without their two execs per pod ADD and DEL); pods with a hostPort and networks from conf_dir always run the plugins; false: the plugins for every pod"`
	// PrepareAhead: see internal/sandbox/prepared.go.
	PrepareAhead  bool `toml:"prepare_ahead" doc:"keep the next pod's namespaces made ahead, its network namespace attached to the in-process built-in network (and, after a pod that shared its PID namespace, its pause process started), which the next pod takes instead of making its own (about 5 ms of a RunPodSandbox, 2-3 more with the pause process); it holds one veth and one IP lease of the subnet while berthd runs; pods with a hostPort, host-network pods, pods in user namespaces and networks from conf_dir never take one"`
	DefaultIPMasq bool `toml:"default_ip_masq" doc:"masquerade traffic from built-in network pods that leaves its subnet (one nat rule set for the subnet, installed at start; see docs/networking.md)"`
}

// Streaming configures the exec/attach/port-forward server.
type Streaming struct {
	Address string `toml:"address" doc:"listen address; port 0 picks a free port"`
	TLSCert string `toml:"tls_cert" doc:"TLS certificate file; empty with tls_key empty: plain HTTP"`
	TLSKey  string `toml:"tls_key" doc:"TLS private key file for tls_cert"`
}

// Images configures pulls.
type Images struct {
	MaxConcurrentDownloads int      `toml:"max_concurrent_downloads" doc:"layers downloaded at once per pull"`
	PullProgressTimeout    Duration `toml:"pull_progress_timeout" doc:"cancel a pull that receives no bytes for this long; 0s: never"`
	RegistryConfigDir      string   `toml:"registry_config_dir" doc:"per-registry settings (mirrors, CAs, credentials)"`
	PinnedImages           []string `toml:"pinned_images" doc:"images (tags, digests or ids) reported pinned, which kubelet image garbage collection never removes"`
	MaxLayerUnpackedBytes  int64    `toml:"max_layer_unpacked_bytes" doc:"most bytes one layer may write when unpacked (declared file sizes, sparse files at full size, plus 512 per entry and 4096 per directory); larger layers fail the pull (64 GiB)"`
	MaxLayerEntries        int64    `toml:"max_layer_entries" doc:"most tar entries (files, directories, links) one layer may hold; layers with more fail the pull (1 million)"`
}

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	Address string `toml:"address" doc:"listen address for /metrics; empty: off"`
}

// BerthRunc is where hack/install.sh puts the current runc berth's default
// handler runs: off PATH, so it does not replace the distribution's runc.
const BerthRunc = "/usr/local/lib/berth/runc"

// DefaultRuncPath is the runc handler's default binary: BerthRunc when
// installed, else runc on PATH (Debian's 1.1.5 lacks idmapped mounts, so
// pods in user namespaces are then not offered).
func DefaultRuncPath() string {
	if fi, err := os.Stat(BerthRunc); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
		return BerthRunc
	}
	return "runc"
}

// Default returns the built-in configuration. runc is always configured
// (DefaultRuncPath);
// runsc (gVisor) is added when a runsc binary is on PATH. runsc gets no
// default args: its defaults (systrap platform, sandboxed network stack) suit
// pods, and operators add e.g. "--network=host" through a drop-in.
func Default() *Config {
	c := &Config{
		Root:                 "/var/lib/berth",
		StateDir:             "/run/berth",
		Socket:               "/run/berth/berth.sock",
		LogLevel:             "info",
		LogFormat:            "text",
		Conmon:               "",
		CgroupDriverSetting:  "",
		DefaultCgroupParent:  "/berth",
		RestrictOOMScoreAdj:  AutoBool("auto"),
		UncollectedResultTTL: Duration{5 * time.Minute},
		MemoryTrimAfter:      Duration{3 * time.Second},
		ExecSyncMaxOutput:    16 << 20,
		DefaultRuntime:       "runc",
		Runtimes: map[string]Runtime{
			"runc": {Path: DefaultRuncPath(), Args: []string{}, PodAnnotations: []string{}, ContainerAnnotations: []string{}},
		},
		Network: Network{
			ConfDir:          "/etc/cni/net.d",
			BinDirs:          []string{"/usr/lib/cni", "/opt/cni/bin"},
			DefaultSubnet:    "10.88.0.0/16",
			DefaultBridge:    "berth0",
			BuiltinNetwork:   true,
			DefaultRoute:     true,
			DefaultIPMasq:    true,
			BuiltinInProcess: true,
			PrepareAhead:     true,
		},
		Streaming: Streaming{Address: "127.0.0.1:0"},
		Images: Images{
			MaxConcurrentDownloads: 3,
			PullProgressTimeout:    Duration{time.Minute},
			RegistryConfigDir:      "/etc/berth/registries.d",
			PinnedImages:           []string{},
			MaxLayerUnpackedBytes:  64 << 30,
			MaxLayerEntries:        1_000_000,
		},
		NRI: nri.DefaultConfig(),
		CDI: cdi.DefaultConfig(),
	}
	if _, err := exec.LookPath("runsc"); err == nil {
		c.Runtimes["runsc"] = Runtime{Path: "runsc", Args: []string{}, PodAnnotations: []string{}, ContainerAnnotations: []string{}}
	}
	return c
}

// Load builds the configuration: defaults, then the file at path, then every
// *.toml in dropInDir in file-name order, then Validate. Each file overrides
// only the keys it sets (arrays are replaced, not appended). An empty path or
// dropInDir skips that source. A missing file is an error only when explicit
// is true (the operator named it); a missing drop-in directory is fine.
func Load(path string, dropInDir string, explicit bool) (*Config, error) {
	c := Default()
	if path != "" {
		data, err := os.ReadFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist) && !explicit:
			// No file at the default location: the defaults stand.
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("config file %s does not exist", path)
		case err != nil:
			return nil, fmt.Errorf("read config file: %w", err)
		default:
			if err := c.decode(path, data); err != nil {
				return nil, err
			}
		}
	}
	if dropInDir != "" {
		entries, err := os.ReadDir(dropInDir) // sorted by file name
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("read config drop-in directory: %w", err)
		}
		for _, e := range entries {
			if e.IsDir() || !strings.HasSuffix(e.Name(), ".toml") {
				continue
			}
			p := filepath.Join(dropInDir, e.Name())
			data, err := os.ReadFile(p)
			if err != nil {
				return nil, fmt.Errorf("read config drop-in: %w", err)
			}
			if err := c.decode(p, data); err != nil {
				return nil, err
			}
		}
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration (after %s and drop-ins in %s):\n%w", orNone(path), orNone(dropInDir), err)
	}
	return c, nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// decode applies one TOML document onto c, setting only the keys it holds.
func (c *Config) decode(name string, data []byte) error {
	// The TOML decoder builds each map value afresh, which would make a
	// drop-in's [runtimes.runc] wipe the runc keys it does not set. Keep the
	// earlier entries so they can be re-decoded onto below.
	before := maps.Clone(c.Runtimes)
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(c)
	if err != nil {
		return fmt.Errorf("config file %s: %w", name, err)
	}
	if keys := md.Undecoded(); len(keys) > 0 {
		names := make([]string, len(keys))
		for i, k := range keys {
			names[i] = k.String()
		}
		return fmt.Errorf("config file %s: unknown keys: %s", name, strings.Join(names, ", "))
	}
	if !md.IsDefined("runtimes") {
		return nil
	}
	var only struct {
		Runtimes map[string]toml.Primitive `toml:"runtimes"`
	}
	md, err = toml.NewDecoder(bytes.NewReader(data)).Decode(&only)
	if err != nil {
		return fmt.Errorf("config file %s: %w", name, err)
	}
	for rtName, prim := range only.Runtimes {
		base, ok := before[rtName]
		if !ok {
			continue // a new handler: the first decode already has it whole
		}
		if err := md.PrimitiveDecode(prim, &base); err != nil {
			return fmt.Errorf("config file %s: runtimes.%s: %w", name, rtName, err)
		}
		c.Runtimes[rtName] = base
	}
	return nil
}
