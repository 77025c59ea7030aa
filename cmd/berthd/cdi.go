package main

import (
	"log/slog"

	"github.com/berthcri/berth/cri"
	"github.com/berthcri/berth/internal/config"
	"github.com/berthcri/berth/oci/cdi"
)

// cdiRegistry reads and watches the CDI spec dirs; with CDI off it is nil (an untyped nil: cri tests the interface)
// and the returned stop does nothing.
func cdiRegistry(c config.CDIConfig, log *slog.Logger) (cri.CDIDevices, func()) {
	if !c.Enabled {
		log.Info("CDI off: containers that ask for CDI devices are refused")
		return nil, func() {}
	}
	r := cdi.New(c.SpecDirs, log.With("component", "cdi"))
	return r, r.Close
}
