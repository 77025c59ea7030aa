package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthcri/berth/deploy"
	"github.com/berthcri/berth/internal/atomicfile"
)

// stubRunner stands in for the host's commands (systemctl, berthd-supervise): it records the calls.
type stubRunner struct {
	mu    sync.Mutex
	calls []string
}

func (s *stubRunner) Run(_ context.Context, name string, args ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, strings.Join(append([]string{name}, args...), " "))
	return nil
}

func (s *stubRunner) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calls
	s.calls = nil
	return c
}

// old is the modification time of every file of a fake node, so that a rewrite shows.
var old = time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC)

// writeTree creates files under root: "path/" is a directory, "path -> target" a symbolic link.
func writeTree(t *testing.T, root string, files map[string]string, mode fs.FileMode) {
	t.Helper()
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if link, target, ok := strings.Cut(name, " -> "); ok {
			must(t, os.MkdirAll(filepath.Dir(filepath.Join(root, link)), 0o755))
			must(t, os.Symlink(target, filepath.Join(root, link)))
			continue
		}
		p := filepath.Join(root, name)
		if strings.HasSuffix(name, "/") {
			must(t, os.MkdirAll(p, 0o755))
			continue
		}
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(files[name]), mode))
		must(t, os.Chmod(p, mode))
		must(t, os.Chtimes(p, old, old))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// snapshot describes every entry under root: type, mode, owner, content digest or link target, and (for files,
// or for everything with dirTimes) the modification time.
func snapshot(t *testing.T, root string, dirTimes bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%s %d:%d", fi.Mode(), st.Uid, st.Gid)
		switch {
		case fi.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			io.Copy(h, f)
			f.Close()
			desc += fmt.Sprintf(" %x %s", h.Sum(nil)[:8], fi.ModTime().Format(time.RFC3339Nano))
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		case dirTimes:
			desc += " " + fi.ModTime().Format(time.RFC3339Nano)
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = desc
		return nil
	})
	must(t, err)
	return out
}

func diffSnapshots(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if got[k] != want[k] {
			t.Errorf("%s: %s: got %q, want %q", what, k, got[k], want[k])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: %s: unexpected %q", what, k, got[k])
		}
	}
}

// payload lays out what the installer image carries under /opt/berth.
func payload(t *testing.T) string {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"bin/berthd":        "berthd v2",
		"bin/berth-monitor": "berth-monitor v2",
		"cni/bridge":        "bridge plugin",
		"cni/host-local":    "host-local plugin",
		"cni/loopback":      "loopback plugin",
		"cni/.version":      "v1.10.0\n",
	}, 0o755)
	return dir
}

const kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
# set by kubeadm
containerRuntimeEndpoint: "unix:///run/containerd/containerd.sock"
authentication:
  anonymous:
    enabled: false
`

const kubeadmFlags = `KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock --pod-infra-container-image=registry.k8s.io/pause:3.9"
`

func newInstaller(root, payloadDir string, r runner) *installer {
	return &installer{
		root:     root,
		payload:  payloadDir,
		endpoint: "unix:///run/berth/berth.sock",
		kubelet:  defaultKubeletFiles,
		node:     "node-1",
		run:      r,
		kube:     func() (*kubeClient, error) { return nil, fmt.Errorf("no API in this test") },
		log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func embedded(t *testing.T, name string) string {
	data, err := deploy.Files.ReadFile(name)
	must(t, err)
	return string(data)
}

func TestInstallFakeNode(t *testing.T) {
	cases := map[string]struct {
		node           map[string]string // the host before install
		defaultNetwork bool
		want           map[string]fs.FileMode
		content        map[string]string // expected contents after install
		first, second  []string          // runner calls of the first and second install
		uninstall      []string
	}{
		"kubeadm node with systemd": {
			node: map[string]string{
				"run/systemd/system/":                "",
				"etc/systemd/system/":                "",
				"etc/hostname":                       "node-1\n",
				"etc/group":                          "root:x:0:\nberth-userns:x:990:\n", // the host has the userns group
				"usr/local/bin/":                     "",
				"opt/cni/bin/loopback":               "the host's loopback",
				"etc/cni/net.d/10-flannel.conflist":  "{}",
				"var/lib/kubelet/config.yaml":        kubeletConfig,
				"var/lib/kubelet/kubeadm-flags.env":  kubeadmFlags,
				"var/lib/":                           "",
				"etc/berth/berth.d/10-mirrors.toml":  "# the admin's\n",
				"etc/systemd/system/kubelet.service": "[Service]\n",
			},
			defaultNetwork: true, // the node has a network: not installed
			want: map[string]fs.FileMode{
				"usr/local/bin/berthd":                 0o755,
				"usr/local/bin/berth-monitor":          0o755,
				"opt/cni/bin/bridge":                   0o755,
				"opt/cni/bin/host-local":               0o755,
				"etc/berth/berth.toml":                 0o644,
				"etc/berth/berth.d/50-installer.toml":  0o644,
				"etc/crictl.yaml":                      0o644,
				"etc/systemd/system/berthd.service":    0o644,
				"var/lib/berth-installer/journal.json": 0o600,
			},
			content: map[string]string{
				"usr/local/bin/berthd":              "berthd v2",
				"usr/local/bin/berth-monitor":       "berth-monitor v2",
				"opt/cni/bin/loopback":              "the host's loopback",
				"etc/systemd/system/berthd.service": embedded(t, "berthd.service"),
				"etc/crictl.yaml":                   embedded(t, "crictl.yaml"),
				"etc/berth/berth.toml":              embedded(t, "berth.toml"),
				"etc/berth/berth.d/50-installer.toml": "# Written by berth-installer, removed by its uninstall. Put your own settings in other files here.\n" +
					"# The kubelet's cgroupDriver.\ncgroup_driver = \"systemd\"\n" +
					"# The kubelet's --pod-infra-container-image.\nsandbox_image = \"registry.k8s.io/pause:3.9\"\n",
				"var/lib/kubelet/config.yaml": kubeletConfig, // install alone leaves the kubelet alone
			},
			first:     []string{"systemctl daemon-reload", "systemctl enable berthd.service", "systemctl restart berthd.service"},
			second:    []string{"systemctl enable berthd.service", "systemctl start berthd.service"},
			uninstall: []string{"systemctl disable --now berthd.service", "systemctl daemon-reload"},
		},
		"node without systemd and an older berth": {
			node: map[string]string{
				"etc/hostname":                                   "node-2\n",
				"usr/local/bin/berthd":                           "berthd v1",
				"etc/crictl.yaml":                                "runtime-endpoint: unix:///run/other.sock\n",
				"etc/berth/berth.d/50-installer.toml":            "# an older installer's\n",
				"etc/berth/berth.toml -> ../berth-defaults.toml": "",
				"etc/berth-defaults.toml":                        "# the admin's\n",
				"var/":                                           "",
			},
			defaultNetwork: true,
			want: map[string]fs.FileMode{
				"usr/local/bin/berthd":                 0o755,
				"usr/local/bin/berth-monitor":          0o755,
				"usr/local/bin/berthd-supervise":       0o755,
				"opt/cni/bin/bridge":                   0o755,
				"opt/cni/bin/host-local":               0o755,
				"opt/cni/bin/loopback":                 0o755,
				"etc/cni/net.d/10-berth.conflist":      0o644,
				"etc/berth/cni/10-berth.conflist.tmpl": 0o644,
				"etc/berth/berth.d/50-installer.toml":  0o644,
			},
			content: map[string]string{
				"usr/local/bin/berthd":                 "berthd v2",
				"usr/local/bin/berth-monitor":          "berth-monitor v2",
				"usr/local/bin/berthd-supervise":       embedded(t, "berthd-supervise"),
				"opt/cni/bin/loopback":                 "loopback plugin",
				"etc/crictl.yaml":                      "runtime-endpoint: unix:///run/other.sock\n", // the host's: kept
				"etc/cni/net.d/10-berth.conflist":      embedded(t, "cni/10-berth.conflist"),
				"etc/berth-defaults.toml":              "# the admin's\n",
				"etc/berth/cni/10-berth.conflist.tmpl": embedded(t, "cni/10-berth.conflist.tmpl"),
				"etc/berth/berth.d/50-installer.toml": "# Written by berth-installer, removed by its uninstall. Put your own settings in other files here.\n" +
					"# --default-network: berth's bridge on the node's pod CIDR, from the kubelet.\n[cni]\n" +
					"conf_template = \"/etc/berth/cni/10-berth.conflist.tmpl\"\n",
			},
			// The host lacks the userns group: made before berthd starts, deleted by uninstall.
			first:     []string{"groupadd --system berth-userns", "/usr/local/bin/berthd-supervise restart"},
			second:    []string{"/usr/local/bin/berthd-supervise start"},
			uninstall: []string{"/usr/local/bin/berthd-supervise stop", "groupdel berth-userns"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			writeTree(t, root, tc.node, 0o644)
			original := snapshot(t, root, false)
			stub := &stubRunner{}
			in := newInstaller(root, payload(t), stub)
			in.defaultNetwork = tc.defaultNetwork

			must(t, in.install(context.Background()))
			for p, mode := range tc.want {
				fi, err := os.Lstat(filepath.Join(root, p))
				if err != nil {
					t.Errorf("%s: %v", p, err)
				} else if fi.Mode() != mode {
					t.Errorf("%s: mode %s, want %s", p, fi.Mode(), mode)
				}
			}
			for p, want := range tc.content {
				if got, err := os.ReadFile(filepath.Join(root, p)); err != nil || string(got) != want {
					t.Errorf("%s: %q (%v), want %q", p, got, err, want)
				}
			}
			if calls := stub.take(); !slices.Equal(calls, tc.first) {
				t.Errorf("first install ran %q, want %q", calls, tc.first)
			}
			leftovers, _ := filepath.Glob(filepath.Join(root, "*/*/"+atomicfile.TempPrefix+"*"))
			if len(leftovers) > 0 {
				t.Errorf("temporary files left: %q", leftovers)
			}

			// The node has a network of its own: berth's bridge and its template stay out.
			_, err := os.Stat(filepath.Join(root, "etc/berth/cni/10-berth.conflist.tmpl"))
			if _, ours := tc.want["etc/cni/net.d/10-berth.conflist"]; !ours && !os.IsNotExist(err) {
				t.Errorf("conf template installed on a node with a network: %v", err)
			} else if ours {
				// berthd renders the template when the kubelet hands down the pod CIDR; uninstall removes that too.
				writeTree(t, root, map[string]string{"etc/cni/net.d/10-berth-net.conflist": "{}"}, 0o644)
			}
			installed := snapshot(t, root, true)
			must(t, in.install(context.Background()))
			diffSnapshots(t, "second install", installed, snapshot(t, root, true))
			if calls := stub.take(); !slices.Equal(calls, tc.second) {
				t.Errorf("second install ran %q, want %q", calls, tc.second)
			}

			must(t, in.uninstall(context.Background()))
			diffSnapshots(t, "after uninstall", original, snapshot(t, root, false))
			if calls := stub.take(); !slices.Equal(calls, tc.uninstall) {
				t.Errorf("uninstall ran %q, want %q", calls, tc.uninstall)
			}
			must(t, in.uninstall(context.Background()))
			diffSnapshots(t, "second uninstall", original, snapshot(t, root, false))
			if calls := stub.take(); len(calls) > 0 {
				t.Errorf("second uninstall ran %q", calls)
			}
		})
	}
}

// An upgrade replaces what the installer installed, keeps the first backup, and berthd restarts once.
func TestInstallUpgradeKeepsOriginalBackup(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{"usr/local/bin/berthd": "berthd v0", "var/lib/": ""}, 0o755)
	original := snapshot(t, root, false)
	stub := &stubRunner{}
	pl := payload(t)
	in := newInstaller(root, pl, stub)
	must(t, in.install(context.Background()))
	must(t, os.WriteFile(filepath.Join(pl, "bin/berthd"), []byte("berthd v3"), 0o755))
	must(t, os.WriteFile(filepath.Join(pl, "cni/bridge"), []byte("bridge v3"), 0o755))
	stub.take()
	must(t, in.install(context.Background()))
	for p, want := range map[string]string{"usr/local/bin/berthd": "berthd v3", "opt/cni/bin/bridge": "bridge v3"} {
		if got, _ := os.ReadFile(filepath.Join(root, p)); string(got) != want {
			t.Errorf("%s after upgrade: %q, want %q", p, got, want)
		}
	}
	if calls := stub.take(); !slices.Equal(calls, []string{"/usr/local/bin/berthd-supervise restart"}) {
		t.Errorf("upgrade ran %q", calls)
	}
	must(t, in.uninstall(context.Background()))
	diffSnapshots(t, "after uninstall", original, snapshot(t, root, false))
}

// A crash after a new berthd was written but before the restart: the next run restarts berthd.
func TestInstallRestartsAfterInterruptedRun(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{"run/systemd/system/": ""}, 0o644)
	stub := &stubRunner{}
	in := newInstaller(root, payload(t), stub)
	failing := &failOnce{stub: stub, fail: "systemctl restart berthd.service"}
	in.run = failing
	if err := in.install(context.Background()); err == nil || !strings.Contains(err.Error(), "restart berthd.service") {
		t.Fatalf("install with a failing restart: %v", err)
	}
	stub.take()
	must(t, in.install(context.Background()))
	want := []string{"systemctl daemon-reload", "systemctl enable berthd.service", "systemctl restart berthd.service"}
	if calls := stub.take(); !slices.Equal(calls, want) {
		t.Errorf("rerun ran %q, want %q", calls, want)
	}
}

type failOnce struct {
	stub *stubRunner
	fail string
	done bool
}

func (f *failOnce) Run(ctx context.Context, name string, args ...string) error {
	f.stub.Run(ctx, name, args...)
	if call := strings.Join(append([]string{name}, args...), " "); call == f.fail && !f.done {
		f.done = true
		return fmt.Errorf("%s: exit status 1", call)
	}
	return nil
}
