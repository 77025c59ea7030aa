// Package cdi resolves CDI (Container Device Interface) device names, such as "vendor.com/gpu=0", against the spec
// files of the configured directories and applies their edits to a container's OCI spec: device nodes (with their
// major:minor read from the host), device cgroup rules, mounts, env, hooks and additional GIDs. It is the
// host-reading half of spec generation: oci/specgen stays pure, and Inject runs on its result.
//
// The library (tags.cncf.io/container-device-interface, as containerd and CRI-O use it) keeps the specs in a cache
// that an fsnotify watch refreshes whenever a .json or .yaml file in a spec directory changes, and that re-adds the
// watch of a directory created after start. A spec file that fails to load is skipped; the devices of the others
// stay usable.
package cdi

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/opencontainers/runtime-spec/specs-go"
	cdilib "tags.cncf.io/container-device-interface/pkg/cdi"
	"tags.cncf.io/container-device-interface/pkg/parser"

	"github.com/berthcri/berth/internal/errdefs"
)

// AnnotationPrefix starts the container annotations that list CDI devices, comma separated: the way device
// plugins asked for CDI devices before the CRI had cdi_devices, still honoured by containerd and CRI-O.
const AnnotationPrefix = cdilib.AnnotationPrefix

// ValidName checks a fully qualified CDI device name, vendor.com/class=name.
func ValidName(name string) error {
	if _, _, _, err := parser.ParseQualifiedName(name); err != nil {
		return err
	}
	return nil
}

// Registry is the CDI devices of a set of spec directories, kept up to date as their files change.
type Registry struct {
	cache *cdilib.Cache
	dirs  []string
	log   *slog.Logger

	mu     sync.Mutex
	logged map[string]string // spec file or dir -> its error as last logged
}

// New reads the spec directories (later ones override devices of the same name in earlier ones) and watches them.
// Missing directories are fine: they are watched once they appear. Close stops the watch.
func New(dirs []string, log *slog.Logger) *Registry {
	// NewCache's error is always nil (kept for API compatibility); load errors are per file, from GetErrors.
	cache, _ := cdilib.NewCache(cdilib.WithSpecDirs(dirs...), cdilib.WithAutoRefresh(true))
	// Cleaned as the library keys its directory errors.
	clean := make([]string, len(dirs))
	for i, d := range dirs {
		clean[i] = filepath.Clean(d)
	}
	r := &Registry{cache: cache, dirs: clean, log: log, logged: map[string]string{}}
	r.logErrors()
	log.Info("CDI spec dirs read", "dirs", clean, "devices", cache.ListDevices())
	return r
}

// Close stops watching the spec directories.
func (r *Registry) Close() {
	_ = r.cache.Configure(cdilib.WithAutoRefresh(false))
}

// Inject applies the edits of the named devices (and of the spec files that define them) to spec. A device that no
// spec defines is ErrNotFound; edits that cannot be applied (a host device node that is missing) are
// ErrFailedPrecondition. spec is then half-edited and must be discarded.
func (r *Registry) Inject(spec *specs.Spec, devices []string) error {
	if len(devices) == 0 {
		return nil
	}
	// In auto-refresh mode this only rescans when a watch was restored (a directory appeared); its error is the
	// spec files' load errors, which logErrors reports by file.
	_ = r.cache.Refresh()
	unresolved, err := r.cache.InjectDevices(spec, devices...)
	// After the lookup, so that the files named below are those of the state it saw, unless the watch refreshed the
	// cache in between; the log then catches up at the next call.
	broken := r.logErrors()
	if len(unresolved) > 0 {
		msg := fmt.Sprintf("CDI device %s: not defined by any spec in %s", quoted(unresolved), strings.Join(r.dirs, ", "))
		if len(broken) > 0 {
			msg += fmt.Sprintf(" (spec files that failed to load, see berthd's log: %s)", strings.Join(broken, ", "))
		}
		return fmt.Errorf("%s: %w", msg, errdefs.ErrNotFound)
	}
	if err != nil {
		return errdefs.FailedPrecondition("CDI device %s: %v", quoted(devices), err)
	}
	return nil
}

// logErrors logs each spec file (or directory) whose load error is new or changed since the last call, and each
// whose errors cleared, so that a broken file is reported once rather than on every container. It returns the spec files
// that currently fail to load.
func (r *Registry) logErrors() []string {
	now := map[string]string{}
	var broken []string
	for path, errs := range r.cache.GetErrors() {
		now[path] = errors.Join(errs...).Error()
		if !slices.Contains(r.dirs, path) {
			broken = append(broken, path)
		}
	}
	slices.Sort(broken)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, path := range slices.Sorted(maps.Keys(now)) {
		if r.logged[path] == now[path] {
			continue
		}
		if slices.Contains(r.dirs, path) {
			// A missing directory is normal (/var/run/cdi until a driver writes there); it is watched once it appears.
			level := slog.LevelWarn
			if errs := r.cache.GetSpecDirErrors(); errors.Is(errs[path], fs.ErrNotExist) {
				level = slog.LevelDebug
			}
			r.log.Log(context.Background(), level, "CDI spec dir not watched", "dir", path, "err", now[path])
			continue
		}
		// A file that fails to load is skipped whole; a conflict drops only the device both files define.
		r.log.Warn("CDI spec file has errors", "file", path, "err", now[path])
	}
	for path := range r.logged {
		if _, ok := now[path]; !ok && !slices.Contains(r.dirs, path) {
			r.log.Info("CDI spec file errors cleared (fixed or removed)", "file", path)
		}
	}
	r.logged = now
	return broken
}

func quoted(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}
