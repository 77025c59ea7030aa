package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"github.com/berthcri/berth/internal/config"
	"github.com/berthcri/berth/internal/privdir"
)

// usernsGID resolves the userns_group from /etc/group (os/user's pure-Go path: berthd is built without cgo); 0
// with the reason when berthd has none, and then user namespaces are off.
func usernsGID(name string) (int, error) {
	if name == "" {
		return 0, errors.New("userns_group is empty")
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, fmt.Errorf("userns_group %q: %w (create it: groupadd --system %s)", name, err, name)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil || gid <= 0 {
		return 0, fmt.Errorf("userns_group %q: gid %q is not a group other than root's", name, g.Gid)
	}
	return gid, nil
}

// makeDirs makes (or tightens) root_dir 0700 and state_dir 0710 to the userns group (0700 without one), and the
// CRI socket's dir 0700 if it is missing (an existing one may be the host's, such as /run).
func makeDirs(cfg config.Config, gid int) error {
	shared := privdir.Private
	if gid > 0 {
		shared = gid
	}
	if err := privdir.Make(cfg.RootDir, privdir.Private); err != nil {
		return fmt.Errorf("root_dir: %w", err)
	}
	if err := privdir.Make(cfg.StateDir, shared); err != nil {
		return fmt.Errorf("state_dir: %w", err)
	}
	sockDir := filepath.Dir(cfg.Listen)
	if _, err := os.Stat(sockDir); errors.Is(err, fs.ErrNotExist) {
		if err := privdir.Make(sockDir, privdir.Private); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	}
	return nil
}
