package nri

import (
	"fmt"
	"path/filepath"
	"time"

	nri "github.com/containerd/nri/pkg/adaptation"
)

// Config is the [nri] section of berth.toml. It uses plain types with toml
// and doc tags in internal/config's style (the TOML decoder reads
// time.Duration from strings such as "2s"), so internal/config can hold it as
// a section as is.
type Config struct {
	Enable              bool          `toml:"enable" doc:"run the NRI adaptation so node plugins (resource policies, device injectors) can hook pod and container lifecycle events; off by default because the adaptation takes over socket_path, which another runtime on the node (containerd, CRI-O) may be serving"`
	SocketPath          string        `toml:"socket_path" doc:"unix socket external NRI plugins connect to"`
	PluginPath          string        `toml:"plugin_path" doc:"directory of pre-registered plugins (executables named IDX-NAME) that berthd launches at start; empty: none"`
	PluginConfigPath    string        `toml:"plugin_config_path" doc:"directory with configuration for pre-registered plugins (IDX-NAME.conf or NAME.conf)"`
	DisableConnections  bool          `toml:"disable_connections" doc:"accept no external plugin connections; only pre-registered plugins run"`
	RegistrationTimeout time.Duration `toml:"plugin_registration_timeout" doc:"how long a plugin may take to connect and register"`
	RequestTimeout      time.Duration `toml:"plugin_request_timeout" doc:"how long a plugin may take to handle one event; a plugin that takes longer is cut off and disconnected"`
}

// DefaultConfig returns NRI off, with containerd's and CRI-O's paths and
// timeouts, so plugins written for either find berth where they expect.
// containerd 2.x enables NRI by default; berth does not, because starting
// the adaptation removes and re-creates the socket: a berthd beside another
// runtime (a node being migrated, a test daemon) would silently take that
// runtime's plugins over. Enabling it is one drop-in line.
func DefaultConfig() Config {
	return Config{
		Enable:              false,
		SocketPath:          nri.DefaultSocketPath,
		PluginPath:          nri.DefaultPluginPath,
		PluginConfigPath:    nri.DefaultPluginConfigPath,
		RegistrationTimeout: nri.DefaultPluginRegistrationTimeout,
		RequestTimeout:      nri.DefaultPluginRequestTimeout,
	}
}

// Validate checks the settings that matter when NRI is enabled.
func (c Config) Validate() error {
	if !c.Enable {
		return nil
	}
	if !c.DisableConnections && !filepath.IsAbs(c.SocketPath) {
		return fmt.Errorf("nri.socket_path %q: want an absolute path", c.SocketPath)
	}
	if c.PluginPath != "" && !filepath.IsAbs(c.PluginPath) {
		return fmt.Errorf("nri.plugin_path %q: want an absolute path or empty", c.PluginPath)
	}
	if !filepath.IsAbs(c.PluginConfigPath) {
		return fmt.Errorf("nri.plugin_config_path %q: want an absolute path", c.PluginConfigPath)
	}
	if c.RegistrationTimeout <= 0 {
		return fmt.Errorf("nri.plugin_registration_timeout %s: want a positive duration such as \"5s\"", c.RegistrationTimeout)
	}
	if c.RequestTimeout <= 0 {
		return fmt.Errorf("nri.plugin_request_timeout %s: want a positive duration such as \"2s\"", c.RequestTimeout)
	}
	return nil
}

// options turns the settings into adaptation options. An empty plugin path
// launches nothing (the adaptation treats a missing directory as empty).
func (c Config) options() []nri.Option {
	opts := []nri.Option{
		nri.WithSocketPath(c.SocketPath),
		nri.WithPluginPath(c.PluginPath),
		nri.WithPluginConfigPath(c.PluginConfigPath),
	}
	if c.DisableConnections {
		opts = append(opts, nri.WithDisabledExternalConnections())
	}
	return opts
}
