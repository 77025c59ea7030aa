package cri

import (
	"context"

	"github.com/berthcri/berth/internal/errdefs"
)

// ensureAppArmor makes sure the default profile is loaded when the container is to run under it: loaded at
// start, it may have been unloaded since (aa-teardown, a failed load at start).
func (s *RuntimeServer) ensureAppArmor(ctx context.Context, profile string) error {
	if profile == "" || profile != s.opts.Host.AppArmorDefaultProfile || s.opts.AppArmor == nil {
		return nil
	}
	if err := s.opts.AppArmor.Ensure(ctx); err != nil {
		return errdefs.FailedPrecondition("linux.security_context.apparmor: default profile %s: %v", profile, err)
	}
	return nil
}

// appArmorInfo is AppArmor in a verbose Status: whether the kernel enforces it, the profile RuntimeDefault and
// no profile mean ("": unconfined), and why there is none.
type appArmorInfo struct {
	Enabled        bool   `json:"enabled"`
	DefaultProfile string `json:"defaultProfile"`
	Note           string `json:"note,omitempty"`
}

func (s *RuntimeServer) appArmorInfo() appArmorInfo {
	return appArmorInfo{Enabled: s.opts.Host.AppArmor, DefaultProfile: s.opts.Host.AppArmorDefaultProfile, Note: s.opts.AppArmorNote}
}
