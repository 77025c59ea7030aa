package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/berthcri/berth/internal/config"
)

// usernsGroup is the default config's userns_group: berthd makes its shared state dirs 0710 to it and advertises user
// namespaces only when the host has it.
var usernsGroup = config.Default().UsernsGroup

// groupTimeout bounds groupadd and groupdel (they wait for the lock of /etc/group).
const groupTimeout = time.Minute

// ensureGroup creates the userns group as a system group when the host's /etc/group lacks it, with the host's own
// groupadd (which takes the lock of /etc/group and /etc/gshadow and picks a free system gid). A host without groupadd
// runs berth without user namespaces: logged, not fatal. The journal keeps the group, so uninstall deletes only a
// group the installer made.
func (in *installer) ensureGroup(ctx context.Context, h *host) error {
	if h.j.Group != "" {
		return nil
	}
	has, err := h.hasGroup(usernsGroup)
	if err != nil || has {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, groupTimeout)
	defer cancel()
	if err := in.run.Run(ctx, "groupadd", "--system", usernsGroup); err != nil {
		in.log.Warn("user namespaces stay off: could not create the userns group", "group", usernsGroup, "err", err)
		return nil
	}
	in.log.Info("created group", "group", usernsGroup)
	h.j.Group = usernsGroup
	return h.save()
}

// removeGroup deletes the group ensureGroup created, if it did. A failure leaves an empty system group: logged.
func (in *installer) removeGroup(ctx context.Context, h *host) {
	if h.j.Group == "" {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, groupTimeout)
	defer cancel()
	if err := in.run.Run(ctx, "groupdel", h.j.Group); err != nil {
		in.log.Warn("group left on the host", "group", h.j.Group, "err", err)
	}
}

// hasGroup says whether the host's /etc/group has name.
func (h *host) hasGroup(name string) (bool, error) {
	f, err := os.Open(h.path("/etc/group"))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read /etc/group: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), name+":") {
			return true, nil
		}
	}
	return false, sc.Err()
}
