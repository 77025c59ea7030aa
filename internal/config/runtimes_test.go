package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/berthcri/berth/internal/errdefs"
)

func TestRuntimesErrors(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "not-exec")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		toml string
		want []string
	}{
		"runc is berth's": {"[runtimes.runc]\nbinary = \"/bin/sh\"", []string{"runtimes.runc:", "berth's own"}},
		"upper-case name": {"[runtimes.Crun]\nbinary = \"/bin/sh\"", []string{"runtimes.Crun:", "not a RuntimeClass handler name"}},
		"dotted name":     {"[runtimes.\"c.run\"]\nbinary = \"/bin/sh\"", []string{`runtimes."c.run":`, "DNS label"}},
		"long name":       {"[runtimes." + strings.Repeat("a", 64) + "]\nbinary = \"/bin/sh\"", []string{"not a RuntimeClass handler name"}},
		"no binary":       {"[runtimes.crun]\nroot = \"/run/crun\"", []string{"runtimes.crun.binary: empty"}},
		"relative binary": {"[runtimes.crun]\nbinary = \"crun\"", []string{"50-x.toml: runtimes.crun.binary:", `"crun" is not an absolute path`}},
		"missing binary":  {"[runtimes.crun]\nbinary = \"/nonexistent/crun\"", []string{"runtimes.crun.binary:", "no such file"}},
		"directory":       {"[runtimes.crun]\nbinary = \"/usr/bin\"", []string{"runtimes.crun.binary:", "not an executable file"}},
		"not executable":  {"[runtimes.crun]\nbinary = \"" + notExec + "\"", []string{"runtimes.crun.binary:", "not an executable file"}},
		"relative root":   {"[runtimes.crun]\nbinary = \"/bin/sh\"\nroot = \"crun\"", []string{"runtimes.crun.root:", "not an absolute path"}},
		"extra command":   {"[runtimes.crun]\nbinary = \"/bin/sh\"\nextra_args = [\"--debug\", \"run\"]", []string{"runtimes.crun.extra_args[1]:", "not an option"}},
		"extra root":      {"[runtimes.crun]\nbinary = \"/bin/sh\"\nextra_args = [\"--root=/x\"]", []string{"runtimes.crun.extra_args[0]:", "--root is set by berth"}},
		"extra systemd":   {"[runtimes.crun]\nbinary = \"/bin/sh\"\nextra_args = [\"--systemd-cgroup\"]", []string{"extra_args[0]: --systemd-cgroup is set by berth"}},
		"annotation glob": {"[runtimes.kata]\nbinary = \"/bin/sh\"\npod_annotations = [\"io.*.x\"]", []string{"runtimes.kata.pod_annotations[0]:", "prefix ending in *"}},
		"annotation all":  {"[runtimes.kata]\nbinary = \"/bin/sh\"\npod_annotations = [\"ok\", \"*\"]", []string{"runtimes.kata.pod_annotations[1]:"}},
		"unknown key":     {"[runtimes.crun]\nbinary = \"/bin/sh\"\npath = \"/x\"", []string{"runtimes.crun.path: unknown key"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"berth.d/50-x.toml": tc.toml})
			_, err := Load("", filepath.Join(dir, "berth.d"))
			if err == nil {
				t.Fatalf("Load succeeded, want an error mentioning %q", tc.want)
			}
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("error %q does not wrap ErrInvalidArgument", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestRuntimesAccepted(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"berth.toml": "state_dir = \"/run/b\"\n[runtimes.crun]\nbinary = \"/bin/true\"\n[runtimes.gvisor]\nbinary = \"/bin/sh\"\n",
		// A later file replaces a handler's whole table and keeps the others.
		"berth.d/50-x.toml": "[runtimes.gvisor]\nbinary = \"/bin/true\"\nroot = \"/run/runsc\"\nsystemd_cgroup = false\nextra_args = [\"--platform=ptrace\"]\npod_annotations = [\"dev.gvisor.*\", \"exact\"]\n",
	})
	c, err := Load(filepath.Join(dir, "berth.toml"), filepath.Join(dir, "berth.d"))
	if err != nil {
		t.Fatal(err)
	}
	no := false
	want := map[string]RuntimeConfig{
		"crun": {Binary: "/bin/true"},
		"gvisor": {Binary: "/bin/true", Root: "/run/runsc", SystemdCgroup: &no, ExtraArgs: []string{"--platform=ptrace"},
			PodAnnotations: []string{"dev.gvisor.*", "exact"}},
	}
	if !reflect.DeepEqual(c.Runtimes, want) {
		t.Errorf("runtimes = %+v, want %+v", c.Runtimes, want)
	}
	for name, wantRoot := range map[string]string{"crun": "/run/b/runtimes/crun/root", "gvisor": "/run/runsc"} {
		if got := c.RuntimeRoot(name); got != wantRoot {
			t.Errorf("RuntimeRoot(%s) = %q, want %q", name, got, wantRoot)
		}
	}
	if got := c.RuntimeRecords("crun"); got != "/run/b/runtimes/crun/containers" {
		t.Errorf("RuntimeRecords(crun) = %q", got)
	}
	b, err := c.TOML()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "[runtimes.gvisor]") || !strings.Contains(string(b), `extra_args = ["--platform=ptrace"]`) {
		t.Errorf("TOML() lacks the runtimes:\n%s", b)
	}
}
