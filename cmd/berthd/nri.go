package main

import (
	"log/slog"

	"github.com/berthcri/berth/cri"
	"github.com/berthcri/berth/internal/config"
	"github.com/berthcri/berth/internal/nri"
)

// startNRI starts NRI when [nri] enable is set: after recovery, so that plugins are synchronized with the pods and
// containers that survived, and before the CRI is served. Off, no socket is opened and no plugin started.
func startNRI(rt *cri.RuntimeServer, c config.NRIConfig, log *slog.Logger) error {
	if !c.Enable {
		return nil
	}
	if err := rt.StartNRI(nri.Config{SocketPath: c.SocketPath, PluginPath: c.PluginPath, PluginConfigPath: c.PluginConfigPath,
		RegistrationTimeout: c.RegistrationTimeout.Duration, RequestTimeout: c.RequestTimeout.Duration}); err != nil {
		return err
	}
	log.Info("NRI enabled", "socket", c.SocketPath, "plugin_path", c.PluginPath)
	return nil
}
