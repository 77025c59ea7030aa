package main

import (
	"encoding/json"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/berthcri/berth/image"
	"github.com/berthcri/berth/internal/config"
	"github.com/berthcri/berth/internal/sdnotify"
)

// reloader applies a new configuration on SIGHUP: the registry configuration (berth.toml's hosts, the certs.d dir,
// registry.docker_config), pinned images and the log level. Everything else takes a restart, and a reload that
// changes it says so. A configuration that fails to load or validate changes nothing.
type reloader struct {
	load     func() (config.Config, error)
	images   *image.Service
	level    *slog.LevelVar
	notifier *sdnotify.Notifier
	log      *slog.Logger
	running  config.Config // what is in effect
}

// restartOnly are the registry keys the image service reads once, in image.New, not from the client a reload swaps.
var restartOnly = map[string]bool{
	"registry.pull_progress_timeout":    true,
	"registry.max_concurrent_downloads": true,
	"registry.max_unpacked_size":        true,
}

// reloadable says whether a flattened key applies on reload.
func reloadable(key string) bool {
	return key == "pinned_images" || key == "log.level" || strings.HasPrefix(key, "registry.") && !restartOnly[key]
}

func (r *reloader) reload() {
	if err := r.notifier.Notify(sdnotify.Reloading()); err != nil {
		r.log.Warn("systemd not told berthd is reloading", "err", err)
	}
	defer func() {
		if err := r.notifier.Notify(sdnotify.Ready); err != nil {
			r.log.Warn("systemd not told the reload is over", "err", err)
		}
	}()
	r.log.Info("SIGHUP: reloading the configuration")
	cfg, err := r.load()
	if err != nil {
		r.log.Error("reload refused: the running configuration is kept", "err", err)
		return
	}
	cfg.CgroupDriver = cgroupDriver(cfg.CgroupDriver)
	before := r.images.Registry()
	// The sandbox image is pinned as the running one: a new sandbox_image applies at restart.
	if err := r.images.Reload(cfg.Registry, append(slices.Clone(cfg.PinnedImages), r.running.SandboxImage)); err != nil {
		r.log.Error("reload refused: the running configuration is kept", "err", err)
		return
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level)) // validated by load
	r.level.Set(level)

	applied, restart := diffConfig(r.running, cfg)
	hosts := changedHosts(before, r.images.Registry())
	next := r.running
	next.Registry, next.PinnedImages, next.Log.Level = cfg.Registry, cfg.PinnedImages, cfg.Log.Level
	r.running = next
	if len(applied) == 0 && len(hosts) == 0 {
		r.log.Info("reloaded: nothing changed")
	} else {
		r.log.Info("reloaded", "changed", applied, "registryHostsChanged", hosts)
	}
	if len(restart) > 0 {
		r.log.Warn("reload: these keys changed but apply only when berthd restarts", "keys", restart)
	}
}

// diffConfig returns the keys (flattened, e.g. "registry.hosts.docker.io.mirrors") whose values differ, split into
// those a reload applies and those that need a restart. Secrets are compared redacted, so a changed password shows
// as unchanged; its effect is logged through the registry host that carries it only when its endpoints change.
func diffConfig(old, new config.Config) (applied, restart []string) {
	a, b := flatten(old), flatten(new)
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if a[k] == b[k] {
			continue
		}
		if reloadable(k) {
			applied = append(applied, k)
		} else {
			restart = append(restart, k)
		}
	}
	return applied, restart
}

// flatten maps each leaf of c (as TOML keys, secrets redacted) to its JSON value.
func flatten(c config.Config) map[string]string {
	out := map[string]string{}
	b, err := c.Redacted().JSON()
	if err != nil {
		return out
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return out
	}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		if m, ok := v.(map[string]any); ok {
			for k, child := range m {
				walk(strings.TrimPrefix(prefix+"."+k, "."), child)
			}
			return
		}
		j, _ := json.Marshal(v)
		out[prefix] = string(j)
	}
	walk("", m)
	return out
}

// changedHosts lists the configured hosts (of either client) whose endpoints differ between the two.
func changedHosts(before, after interface {
	Hosts() []string
	Fingerprint(host string) string
}) []string {
	names := map[string]bool{}
	for _, h := range before.Hosts() {
		names[h] = true
	}
	for _, h := range after.Hosts() {
		names[h] = true
	}
	var changed []string
	for _, h := range slices.Sorted(maps.Keys(names)) {
		if before.Fingerprint(h) != after.Fingerprint(h) {
			changed = append(changed, h)
		}
	}
	return changed
}
