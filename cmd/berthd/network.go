package main

import (
	"log/slog"
	"path/filepath"

	"github.com/berth-project/berth/internal/config"
	"github.com/berth-project/berth/internal/network"
)

// newNetwork sets up CNI from the [network] settings. The ADD result cache
// and the built-in network's IP leases live in the state dir: they must
// outlive a berthd restart, and go at reboot together with the pods.
func newNetwork(cfg *config.Config, log *slog.Logger) (*network.Manager, error) {
	nc := network.Config{
		ConfDir:  cfg.Network.ConfDir,
		BinDirs:  cfg.Network.BinDirs,
		CacheDir: filepath.Join(cfg.StateDir, "cni", "cache"),
		Logger:   log,
	}
	if cfg.Network.BuiltinNetwork {
		nc.Builtin = &network.Builtin{
			Name:         "berth",
			Bridge:       cfg.Network.DefaultBridge,
			Subnet:       cfg.Network.DefaultSubnet,
			DefaultRoute: cfg.Network.DefaultRoute,
			IPMasq:       cfg.Network.DefaultIPMasq,
			InProcess:    cfg.Network.BuiltinInProcess,
			PrepareAhead: cfg.Network.PrepareAhead,
			DataDir:      filepath.Join(cfg.StateDir, "cni", "networks"),
		}
	}
	return network.New(nc)
}
