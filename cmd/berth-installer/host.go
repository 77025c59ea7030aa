package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/internal/atomicfile"
)

// stateDir (a host path) holds the journal and the backups of the files the installer replaced.
const stateDir = "/var/lib/berth-installer"

// journal records what the installer changed on the host. Every change is recorded before it is made, so a crash
// leaves nothing unrecorded, and uninstall undoes the records in reverse order.
type journal struct {
	Dirs     []string     `json:"dirs,omitempty"`     // directories the installer created, parents first
	Files    []fileRecord `json:"files,omitempty"`    // files it created or replaced
	Kubelet  []fileRecord `json:"kubelet,omitempty"`  // kubelet files --switch changed
	Labelled bool         `json:"labelled,omitempty"` // --switch labelled the node
	Service  string       `json:"service,omitempty"`  // how berthd runs: "systemd" or "script"
	Group    string       `json:"group,omitempty"`    // the userns group the installer created
	// PendingRestart: a file berthd reads changed and berthd has not been restarted since.
	PendingRestart bool `json:"pending_restart,omitempty"`
}

// fileRecord is one file the installer wrote. With Backup the original is kept at <stateDir>/backup/<Path>;
// without, the file did not exist before.
type fileRecord struct {
	Path   string `json:"path"`
	Backup bool   `json:"backup,omitempty"`
}

// host is the node's file system seen through its root (e.g. /host in the installer's pod), with the journal.
// Paths passed to its methods are host paths such as /etc/berth/berth.toml.
type host struct {
	root  string
	j     journal
	saved []byte // the journal as last written, to write it only when it changed
	lock  *os.File
}

// openHost loads the journal. With create it makes the state dir (recording the directories it creates) and takes
// the installer's lock; without, a host that has no state dir yields nil: nothing was installed.
func openHost(root string, create bool) (*host, error) {
	h := &host{root: root}
	_, err := os.Stat(h.path(stateDir))
	switch {
	case errors.Is(err, fs.ErrNotExist) && !create:
		return nil, nil
	case errors.Is(err, fs.ErrNotExist):
		missing, err := h.missingDirs(stateDir)
		if err != nil {
			return nil, err
		}
		if err := h.mkdirs(missing); err != nil {
			return nil, err
		}
		h.j.Dirs = missing
	case err != nil:
		return nil, fmt.Errorf("state dir: %w", err)
	}
	// Two installers may run at once (the install and switch DaemonSets); the lock on the state dir orders them.
	if h.lock, err = os.Open(h.path(stateDir)); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	if err := unix.Flock(int(h.lock.Fd()), unix.LOCK_EX); err != nil {
		h.lock.Close()
		return nil, fmt.Errorf("lock %s: %w", stateDir, err)
	}
	data, err := os.ReadFile(h.path(stateDir + "/journal.json"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		h.close()
		return nil, fmt.Errorf("journal: %w", err)
	default:
		if err := json.Unmarshal(data, &h.j); err != nil {
			h.close()
			return nil, fmt.Errorf("journal %s: %w", stateDir+"/journal.json", err)
		}
		h.saved = data
	}
	if err := h.save(); err != nil {
		h.close()
		return nil, err
	}
	return h, nil
}

func (h *host) close() { h.lock.Close() }

// path maps a host path into the root. Symbolic links in its directories resolve inside the root (an absolute link
// on the host must not lead into the installer's own file system); the last element is not followed.
func (h *host) path(p string) string {
	dir, err := securejoin.SecureJoin(h.root, path.Dir(p))
	if err != nil {
		// SecureJoin fails only on a symlink loop; the lexical path then fails at the first use with a clear error.
		dir = filepath.Join(h.root, path.Dir(p))
	}
	return filepath.Join(dir, path.Base(p))
}

// save writes the journal when it changed since it was read or last written.
func (h *host) save() error {
	data, err := json.MarshalIndent(h.j, "", "  ")
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	data = append(data, '\n')
	if bytes.Equal(data, h.saved) {
		return nil
	}
	if err := atomicfile.WriteFile(h.path(stateDir+"/journal.json"), data, 0o600); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	h.saved = data
	return nil
}

// missingDirs returns the directories of p (p included) that do not exist yet, parents first.
func (h *host) missingDirs(p string) ([]string, error) {
	var missing []string
	for d := p; d != "/"; d = path.Dir(d) {
		fi, err := os.Stat(h.path(d))
		if err == nil {
			if !fi.IsDir() {
				return nil, fmt.Errorf("%s: not a directory", d)
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		missing = append(missing, d)
	}
	slices.Reverse(missing)
	return missing, nil
}

func (h *host) mkdirs(dirs []string) error {
	for _, d := range dirs {
		if err := os.Mkdir(h.path(d), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	return nil
}

// mkdirAll creates p and its missing parents, recording them first.
func (h *host) mkdirAll(p string) error {
	missing, err := h.missingDirs(p)
	if err != nil || len(missing) == 0 {
		return err
	}
	for _, d := range missing {
		if !slices.Contains(h.j.Dirs, d) {
			h.j.Dirs = append(h.j.Dirs, d)
		}
	}
	if err := h.save(); err != nil {
		return err
	}
	return h.mkdirs(missing)
}

// replacePolicy says what to do with a file the host already has that the installer did not write.
type replacePolicy int

const (
	keepHosts replacePolicy = iota // leave it: the host's own config wins
	backUp                         // replace it, keeping the original for uninstall
)

// writeFile makes host file p hold data with mode, by writing a new file and renaming it over p. It does nothing
// when p already has that content and mode, or when p is the host's own file and policy is keepHosts. Before writing
// it records the change in *records and sets *pending (if not nil) in the journal. It reports whether it wrote p.
func (h *host) writeFile(records *[]fileRecord, p string, data []byte, mode fs.FileMode, policy replacePolicy, pending *bool) (bool, error) {
	full := h.path(p)
	fi, err := os.Lstat(full)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if exists && fi.Mode().IsRegular() && fi.Mode().Perm() == mode {
		same, err := sameContent(full, data)
		if err != nil || same {
			return false, err
		}
	}
	recorded := slices.ContainsFunc(*records, func(r fileRecord) bool { return r.Path == p })
	if !recorded {
		if exists && policy == keepHosts {
			return false, nil
		}
		if exists {
			if err := h.backUp(p, fi); err != nil {
				return false, err
			}
		}
		*records = append(*records, fileRecord{Path: p, Backup: exists})
	}
	if pending != nil {
		*pending = true
	}
	if err := h.save(); err != nil {
		return false, err
	}
	if err := h.mkdirAll(path.Dir(p)); err != nil {
		return false, err
	}
	// A new file renamed over the old: a running binary at p keeps its file, a reader never sees half a file.
	if err := atomicfile.WriteFile(full, data, mode); err != nil {
		return false, fmt.Errorf("install %s: %w", p, err)
	}
	return true, nil
}

func (h *host) backupPath(p string) string { return h.path(stateDir + "/backup" + p) }

// backUp copies host file p (a regular file or a symbolic link) into the state dir with its mode, owner and times.
func (h *host) backUp(p string, fi fs.FileInfo) error {
	dst := h.backupPath(p)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return fmt.Errorf("back up %s: %w", p, err)
	}
	if err := copyEntry(h.path(p), dst, fi); err != nil {
		return fmt.Errorf("back up %s: %w", p, err)
	}
	return nil
}

// restore undoes one record: the backup goes back into place, or a file the installer created is removed.
func (h *host) restore(r fileRecord) error {
	full := h.path(r.Path)
	if !r.Backup {
		if err := os.Remove(full); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", r.Path, err)
		}
		return nil
	}
	src := h.backupPath(r.Path)
	fi, err := os.Lstat(src)
	if err != nil {
		return fmt.Errorf("restore %s: %w", r.Path, err)
	}
	if err := copyEntry(src, full, fi); err != nil {
		return fmt.Errorf("restore %s: %w", r.Path, err)
	}
	return nil
}

// removeDirs removes the directories the installer created, children first, leaving those that are not empty.
func (h *host) removeDirs() {
	for _, d := range slices.Backward(h.j.Dirs) {
		os.Remove(h.path(d))
	}
}

// replaceSymlink makes p a symbolic link to target, owned by uid:gid with modification time mtime, through a new
// link renamed over p: atomicfile's for a link.
func replaceSymlink(p, target string, uid, gid int, mtime time.Time) error {
	tmp := filepath.Join(filepath.Dir(p), atomicfile.TempPrefix+filepath.Base(p)+"-berth-installer")
	os.Remove(tmp) // left by a crash
	err := os.Symlink(target, tmp)
	if err == nil {
		err = os.Lchown(tmp, uid, gid)
	}
	if err == nil {
		ts := []unix.Timespec{unix.NsecToTimespec(mtime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
		err = unix.UtimesNanoAt(unix.AT_FDCWD, tmp, ts, unix.AT_SYMLINK_NOFOLLOW)
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(p))
}

// copyEntry copies a regular file or a symbolic link from src to dst (replacing dst), keeping mode, owner and
// modification time, so that a restored file is the original byte for byte.
func copyEntry(src, dst string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: no owner information", src)
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		return replaceSymlink(dst, target, int(st.Uid), int(st.Gid), fi.ModTime())
	case fi.Mode().IsRegular():
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		// Mode after chown, which clears setuid and setgid (atomicfile sets it after Prepare).
		return atomicfile.Write(dst, data, atomicfile.Options{
			Perm: fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky),
			Prepare: func(f *os.File) error {
				if err := f.Chown(int(st.Uid), int(st.Gid)); err != nil {
					return err
				}
				return os.Chtimes(f.Name(), fi.ModTime(), fi.ModTime())
			},
		})
	default:
		return fmt.Errorf("%s: %s is neither a regular file nor a symbolic link", src, fi.Mode().Type())
	}
}

func sameContent(p string, data []byte) (bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false, fmt.Errorf("checksum %s: %w", p, err)
	}
	return bytes.Equal(h.Sum(nil), sha256Sum(data)), nil
}

func sha256Sum(data []byte) []byte {
	s := sha256.Sum256(data)
	return s[:]
}
