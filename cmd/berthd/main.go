// Command berthd is berth's CRI runtime daemon.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/internal/config"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "berthd:", err)
		os.Exit(1)
	}
}

type flags struct {
	config, root, stateDir, socket, logLevel string
}

func newRootCommand() *cobra.Command {
	var f flags
	cmd := &cobra.Command{
		Use:           "berthd",
		Short:         "berth's Kubernetes container runtime daemon (CRI v1)",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(cmd, f)
			if err != nil {
				return err
			}
			return run(cmd.Context(), cfg, func() (*config.Config, error) { return loadConfig(cmd, f) })
		},
	}
	cmd.Flags().StringVar(&f.config, "config", config.DefaultPath, "config file (TOML); drop-ins are read from berth.d beside it")
	cmd.Flags().StringVar(&f.root, "root", "", "persistent data dir (overrides root in the config)")
	cmd.Flags().StringVar(&f.stateDir, "state-dir", "", "runtime state dir (overrides state_dir)")
	cmd.Flags().StringVar(&f.socket, "socket", "", "CRI socket path (overrides socket)")
	cmd.Flags().StringVar(&f.logLevel, "log-level", "", "debug, info, warn or error (overrides log_level)")

	cfgCmd := &cobra.Command{Use: "config", Short: "configuration helpers"}
	cfgCmd.AddCommand(&cobra.Command{
		Use:   "default",
		Short: "print every setting with its default value and a comment",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return config.WriteDefault(cmd.OutOrStdout())
		},
	})
	cmd.AddCommand(cfgCmd)
	cmd.AddCommand(newRunscShimCommands()...)
	return cmd
}

func loadConfig(cmd *cobra.Command, f flags) (*config.Config, error) {
	explicit := cmd.Flags().Changed("config")
	dropIns := ""
	if f.config != "" {
		dropIns = configDropInDir(f.config)
	}
	cfg, err := config.Load(f.config, dropIns, explicit)
	if err != nil {
		return nil, err
	}
	if f.root != "" {
		cfg.Root = f.root
	}
	if f.stateDir != "" {
		cfg.StateDir = f.stateDir
		if !cmd.Flags().Changed("socket") && cfg.Socket == config.Default().Socket {
			cfg.Socket = cfg.StateDir + "/berth.sock"
		}
	}
	if f.socket != "" {
		cfg.Socket = f.socket
	}
	if f.logLevel != "" {
		cfg.LogLevel = f.logLevel
	}
	return cfg, cfg.Validate()
}

// configDropInDir is berth.d beside the config file.
func configDropInDir(path string) string {
	if path == config.DefaultPath {
		return config.DefaultDropInDir
	}
	return filepath.Join(filepath.Dir(path), "berth.d")
}
