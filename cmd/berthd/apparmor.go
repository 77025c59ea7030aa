package main

import (
	"context"
	"log/slog"
	"os/exec"

	"github.com/berthcri/berth/cri"
	"github.com/berthcri/berth/oci/apparmor"
	"github.com/berthcri/berth/oci/specgen"
)

// parserPaths are where Debian, Ubuntu and SUSE put apparmor_parser, for a PATH without the sbin dirs.
var parserPaths = []string{"apparmor_parser", "/usr/sbin/apparmor_parser", "/sbin/apparmor_parser"}

// defaultAppArmor makes berth-default the profile RuntimeDefault and no profile mean on a host that enforces
// AppArmor, and loads it. Without apparmor_parser those containers run unconfined, as they did before berth had
// a default profile, said in the log and in Status (the note): a node lacking a userspace tool keeps running
// pods. A profile that fails to load here is loaded again when a container needs it, and that container fails
// if it still cannot be.
func defaultAppArmor(ctx context.Context, host *specgen.Host, stateDir string, log *slog.Logger) (cri.AppArmorDefault, string) {
	if !host.AppArmor {
		return nil, ""
	}
	var parser string
	for _, p := range parserPaths {
		if path, err := exec.LookPath(p); err == nil {
			parser = path
			break
		}
	}
	if parser == "" {
		note := "apparmor_parser not found: containers with RuntimeDefault or no AppArmor profile run unconfined"
		log.Warn("AppArmor: "+note, "searched", parserPaths)
		return nil, note
	}
	d := apparmor.NewDefault(parser, stateDir, apparmor.ProbeFeatures())
	host.AppArmorDefaultProfile = d.Name()
	if err := d.Ensure(ctx); err != nil {
		log.Warn("AppArmor default profile not loaded; loaded again when a container needs it", "profile", d.Name(), "err", err)
	} else {
		log.Info("AppArmor default profile loaded", "profile", d.Name(), "parser", parser)
	}
	return d, ""
}
