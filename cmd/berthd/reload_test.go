package main

import (
	"reflect"
	"testing"

	"github.com/berthcri/berth/internal/config"
)

func TestDiffConfig(t *testing.T) {
	for name, tc := range map[string]struct {
		before, change   func(*config.Config)
		applied, restart []string
	}{
		"nothing": {change: func(*config.Config) {}},
		"registry and log level apply": {
			change: func(c *config.Config) {
				c.Log.Level = "debug"
				c.Registry.Hosts = map[string]config.RegistryHost{"docker.io": {Mirrors: []string{"https://m.example"}}}
				c.PinnedImages = []string{"busybox"}
			},
			applied: []string{"log.level", "pinned_images", "registry.hosts.docker.io.mirrors"},
		},
		"the rest takes a restart": {
			change: func(c *config.Config) {
				c.Log.Format = "json"
				c.SandboxImage = "pause:x"
				c.Registry.ConfigPath = "/etc/berth/certs.d"
			},
			applied: []string{"registry.config_path"},
			restart: []string{"log.format", "sandbox_image"},
		},
		"a changed secret is not shown": {
			before: func(c *config.Config) {
				c.Registry.Hosts = map[string]config.RegistryHost{"r.example": {Username: "u", Password: "one"}}
			},
			change: func(c *config.Config) {
				c.Registry.Hosts = map[string]config.RegistryHost{"r.example": {Username: "u", Password: "other"}}
			},
		},
	} {
		t.Run(name, func(t *testing.T) {
			old := config.Default()
			if tc.before != nil {
				tc.before(&old)
			}
			next := config.Default()
			tc.change(&next)
			applied, restart := diffConfig(old, next)
			if !reflect.DeepEqual(applied, tc.applied) || !reflect.DeepEqual(restart, tc.restart) {
				t.Errorf("applied %q restart %q, want %q %q", applied, restart, tc.applied, tc.restart)
			}
		})
	}
}

// TestReloadable: the registry keys the image service reads only at start are not reported as reloaded.
func TestReloadable(t *testing.T) {
	for key, want := range map[string]bool{
		"log.level":                         true,
		"pinned_images":                     true,
		"registry.hosts.a.example.mirrors":  true,
		"registry.config_path":              true,
		"registry.docker_config":            true,
		"registry.max_manifest_size":        true,
		"registry.pull_progress_timeout":    false,
		"registry.max_concurrent_downloads": false,
		"registry.max_unpacked_size":        false,
		"cni.conf_dir":                      false,
		"log.format":                        false,
	} {
		if got := reloadable(key); got != want {
			t.Errorf("reloadable(%q) = %v, want %v", key, got, want)
		}
	}
}
