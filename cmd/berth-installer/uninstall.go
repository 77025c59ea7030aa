package main

import (
	"context"
	"fmt"
	"os"
	"slices"
)

// uninstall reverses install from the journal: the kubelet goes back to its runtime (on a drained node), berthd
// stops, every file the installer wrote is restored from its backup or removed, and so are the directories it made
// and its state. Each step is saved as it completes, so an interrupted uninstall continues where it stopped.
// berthd's own data (/var/lib/berth, /run/berth) stays.
func (in *installer) uninstall(ctx context.Context) error {
	h, err := openHost(in.root, false)
	if err != nil {
		return err
	}
	if h == nil {
		in.log.Info("nothing to uninstall: no " + stateDir)
		return nil
	}
	defer h.close()
	if err := in.unswitch(ctx, h); err != nil {
		return err
	}

	switch h.j.Service {
	case serviceSystemd:
		if err := in.run.Run(ctx, "systemctl", "disable", "--now", berthdUnit); err != nil {
			return fmt.Errorf("stop berthd: %w", err)
		}
	case serviceScript:
		if _, err := os.Stat(h.path(supervisePath)); err == nil {
			if err := in.run.Run(ctx, supervisePath, "stop"); err != nil {
				return fmt.Errorf("stop berthd: %w", err)
			}
		}
	}
	// berthd rendered the conf template into the conf dir; the template goes with the journal's files below.
	if slices.ContainsFunc(h.j.Files, func(r fileRecord) bool { return r.Path == templatePath }) {
		if err := os.Remove(h.path(renderedPath)); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("remove %s: %w", renderedPath, err)
		}
	}
	if err := in.restoreAll(h, &h.j.Files); err != nil {
		return err
	}
	if h.j.Service == serviceSystemd {
		if err := in.run.Run(ctx, "systemctl", "daemon-reload"); err != nil {
			return err
		}
	}
	in.removeGroup(ctx, h)
	if err := os.RemoveAll(h.path(stateDir)); err != nil {
		return fmt.Errorf("remove %s: %w", stateDir, err)
	}
	h.removeDirs()
	in.log.Info("uninstalled berth")
	return nil
}

// unswitch undoes --switch: on a cordoned and drained node the kubelet's files are restored and the kubelet
// restarted, then the label goes.
func (in *installer) unswitch(ctx context.Context, h *host) error {
	if len(h.j.Kubelet) == 0 && !h.j.Labelled {
		return nil
	}
	if in.node == "" {
		return fmt.Errorf("--node is empty: the node was switched to berth, and undoing that needs its name (NODE_NAME)")
	}
	kube, err := in.kube()
	if err != nil {
		return err
	}
	if len(h.j.Kubelet) > 0 {
		if err := checkDrained(ctx, kube, in.node); err != nil {
			return err
		}
		for _, r := range slices.Backward(h.j.Kubelet) {
			if err := h.restore(r); err != nil {
				return err
			}
		}
		if err := in.run.Run(ctx, "systemctl", "restart", kubeletUnit); err != nil {
			return fmt.Errorf("restart the kubelet: %w", err)
		}
		h.j.Kubelet = nil
		if err := h.save(); err != nil {
			return err
		}
		in.log.Info("pointed the kubelet back at its previous runtime", "node", in.node)
	}
	if h.j.Labelled {
		if err := kube.setLabel(ctx, in.node, runtimeLabel, nil); err != nil {
			return fmt.Errorf("unlabel node %s: %w", in.node, err)
		}
		h.j.Labelled = false
		return h.save()
	}
	return nil
}

// restoreAll undoes *records last first, dropping each from the journal once undone.
func (in *installer) restoreAll(h *host, records *[]fileRecord) error {
	for len(*records) > 0 {
		last := len(*records) - 1
		if err := h.restore((*records)[last]); err != nil {
			return err
		}
		in.log.Info("restored", "file", (*records)[last].Path, "from_backup", (*records)[last].Backup)
		*records = (*records)[:last]
		if err := h.save(); err != nil {
			return err
		}
	}
	return nil
}
