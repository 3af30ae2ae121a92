package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/berth-project/berth/internal/config"
	"github.com/berth-project/berth/internal/image"
	"github.com/berth-project/berth/internal/registry"
)

// reloadOnHUP re-reads the config on SIGHUP and applies what can change
// without a restart: the log level, the registry hosts configuration and
// the pinned images.
// Everything else (dirs, handlers, network, streaming) needs a restart; a
// config that no longer loads is reported and the running one kept. Unlike
// containerd, SIGHUP never ends the daemon.
func reloadOnHUP(ctx context.Context, log *slog.Logger, reload func() (*config.Config, error), puller *image.Puller, images *image.Service) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		cfg, err := reload()
		if err != nil {
			log.Error("SIGHUP: config not reloaded; keeping the running one", "err", err)
			continue
		}
		logLevel.Set(cfg.SlogLevel())
		regs, err := registry.Load(cfg.Images.RegistryConfigDir)
		if err != nil {
			log.Error("SIGHUP: registry configuration not reloaded", "dir", cfg.Images.RegistryConfigDir, "err", err)
		} else {
			puller.SetRegistries(regs)
		}
		images.SetPinnedRefs(cfg.Images.PinnedImages)
		log.Info("SIGHUP: reloaded log level, registry configuration and pinned images", "logLevel", cfg.LogLevel, "pinnedImages", len(cfg.Images.PinnedImages))
	}
}
