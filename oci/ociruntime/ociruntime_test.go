package ociruntime

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/oci/ctr"
)

func TestSpecVersion(t *testing.T) {
	tests := map[string]struct {
		out, want string
	}{
		"crun": {"crun version 1.8.1\ncommit: f8a0\nrundir: /run/crun\nspec: 1.0.0\n+SYSTEMD +SELINUX\n", "1.0.0"},
		"runc": {"runc version 1.2.5\ncommit: v1.2.5-0\nspec: 1.2.0\ngo: go1.23\n", "1.2.0"},
		"none": {"runsc version release-20240101.0\n", ""},
	}
	for name, tc := range tests {
		if got := parseSpecVersion(tc.out); got != tc.want {
			t.Errorf("%s: parseSpecVersion = %q, want %q", name, got, tc.want)
		}
	}
}

func TestNewer(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"1.2.1", "1.0.0", true},
		{"1.2.1", "1.2.0", false}, // patch levels do not matter
		{"1.1.0", "1.2.0", false},
		{"2.0.0", "1.9.0", true},
		{"1.2.0-rc.1", "1.1.0", true},
		{"1.2", "garbage", false},
		{"", "1.0.0", false},
	}
	for _, tc := range tests {
		if got := newer(tc.a, tc.b); got != tc.want {
			t.Errorf("newer(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestSharesPID(t *testing.T) {
	tests := map[string]struct {
		spec *specs.Spec
		want bool
	}{
		"no linux":   {&specs.Spec{}, true},
		"own":        {&specs.Spec{Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.NetworkNamespace}, {Type: specs.PIDNamespace}}}}, false},
		"pod's":      {&specs.Spec{Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace, Path: "/proc/1/ns/pid"}}}}, true},
		"host's":     {&specs.Spec{Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.MountNamespace}}}}, true},
		"empty list": {&specs.Spec{Linux: &specs.Linux{}}, true},
	}
	for name, tc := range tests {
		if got := sharesPID(tc.spec); got != tc.want {
			t.Errorf("%s: sharesPID = %v, want %v", name, got, tc.want)
		}
	}
}

func TestLogMessages(t *testing.T) {
	tests := map[string]struct {
		log, want string
	}{
		"json":  {`{"msg":"error loading config.json","level":"error"}` + "\n", "error loading config.json"},
		"lines": {`{"msg":"a","level":"warning"}` + "\n" + "plain text\n" + `{"msg":"b"}` + "\n", "a; plain text; b"},
		"empty": {"", ""},
		// Only the tail is read: a runtime logging without end cannot fill the error.
		"bounded": {strings.Repeat("x", 3*maxErrText) + "\n" + `{"msg":"last"}` + "\n", "last"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f, err := os.CreateTemp(t.TempDir(), "log")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			f.WriteString(tc.log)
			got := logMessages(f)
			if name == "bounded" {
				if !strings.HasSuffix(got, "; last") || len(got) > maxErrText+10 {
					t.Errorf("logMessages = %d bytes ending %q", len(got), got[max(len(got)-20, 0):])
				}
				return
			}
			if got != tc.want {
				t.Errorf("logMessages = %q, want %q", got, tc.want)
			}
		})
	}
}

// fakeRuntime writes an executable shell script that stands for the runtime binary.
func fakeRuntime(t *testing.T, script string) *Runtime {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "fake-runtime")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	r := &Runtime{Binary: ctr.Binary{Path: bin, Root: filepath.Join(dir, "root")}, Records: filepath.Join(dir, "records")}
	for _, d := range []string{r.Binary.Root, r.Records} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// The runtime's own message reaches the error, from its --log (JSON) or else its stderr, bounded.
func TestRunErrors(t *testing.T) {
	tests := map[string]struct {
		script string
		want   []string
	}{
		// --root R --log L --log-format json: the log file is $4.
		"log":    {`echo '{"msg":"container does not exist","level":"error"}' >>"$4"; echo ignored >&2; exit 1`, []string{"fake-runtime start: exit status 1: container does not exist"}},
		"stderr": {`echo "no such option" >&2; exit 2`, []string{"exit status 2: no such option"}},
		"huge stderr": {`i=0; while [ $i -lt 2000 ]; do echo "line $i of noise"; i=$((i+1)); done >&2; exit 1`,
			[]string{"line 1999 of noise"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := fakeRuntime(t, tc.script)
			err := r.run(context.Background(), call{args: []string{"start", "c1"}})
			if err == nil {
				t.Fatal("run succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if len(err.Error()) > 2*maxErrText {
				t.Errorf("error is %d bytes", len(err.Error()))
			}
		})
	}
}

// The global options come first, in runc's order, and the extra args after berth's.
func TestRunArgs(t *testing.T) {
	r := fakeRuntime(t, `echo "$@" >"$(dirname "$0")/args"`)
	r.Binary.ExtraArgs = []string{"--debug"}
	r.Systemd = true
	if err := r.run(context.Background(), call{args: []string{"start", "c1"}}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(r.Binary.Path), "args"))
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(b))
	want := []string{"--root", r.Binary.Root, "--log", "", "--log-format", "json", "--debug", "--systemd-cgroup", "start", "c1"}
	if len(fields) != len(want) {
		t.Fatalf("args %q, want the shape of %q", fields, want)
	}
	for i, w := range want {
		if w != "" && fields[i] != w {
			t.Errorf("arg %d = %q, want %q (all: %q)", i, fields[i], w, fields)
		}
	}
}

// Operations on a container the runtime has no state of are NotFound without a call; destroying one is not an error.
func TestMissingContainer(t *testing.T) {
	r := fakeRuntime(t, `echo called >"$(dirname "$0")/called"; exit 1`)
	if err := r.Start("c1"); !errdefs.IsNotFound(err) {
		t.Errorf("Start: %v, want NotFound", err)
	}
	if err := r.Update("c1", &specs.LinuxResources{}); !errdefs.IsNotFound(err) {
		t.Errorf("Update: %v, want NotFound", err)
	}
	if _, err := r.Exec(context.Background(), "c1", ctr.ExecProcess{Args: []string{"true"}}, ctr.HelperIO{}); !errdefs.IsNotFound(err) {
		t.Errorf("Exec: %v, want NotFound", err)
	}
	if err := r.Destroy("c1"); err != nil {
		t.Errorf("Destroy: %v", err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(r.Binary.Path), "called")); err == nil {
		t.Error("the runtime was called")
	}
	for _, id := range []string{"", "..", "a/b", "-x"} {
		if err := r.Start(id); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Start(%q): %v, want InvalidArgument", id, err)
		}
	}
}

// A spec newer than the version the binary states is lowered to it (crun 1.8 refuses berth's 1.2), and only then.
func TestFitVersion(t *testing.T) {
	tests := map[string]struct {
		version, spec, want string
	}{
		"older runtime": {"crun version 1.8.1\nspec: 1.0.0\n", "1.2.1", "1.0.0"},
		"same minor":    {"runc version 1.2.5\nspec: 1.2.0\n", "1.2.1", "1.2.1"},
		"newer runtime": {"runc version 1.4.0\nspec: 1.3.0\n", "1.2.1", "1.2.1"},
		"states none":   {"runsc version release-1\n", "1.2.1", "1.2.1"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := fakeRuntime(t, "printf '"+strings.ReplaceAll(tc.version, "\n", `\n`)+"'")
			want, err := SpecVersion(context.Background(), r.Binary.Path)
			if err != nil {
				t.Fatal(err)
			}
			if got := FitVersion(tc.spec, want); got != tc.want {
				t.Errorf("FitVersion(%s, %q) = %s, want %s", tc.spec, want, got, tc.want)
			}
		})
	}
}

// A cancelled exec's children are killed with it.
func TestKillTree(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 60 & sleep 60 & sh -c 'sleep 60' & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	var kids []int
	for len(kids) < 4 && time.Now().Before(deadline) {
		kids = descendants(cmd.Process.Pid)
		time.Sleep(10 * time.Millisecond)
	}
	if len(kids) < 4 {
		t.Fatalf("descendants = %v, want 3 sleeps and a shell", kids)
	}
	killTree(cmd.Process.Pid)
	cmd.Wait()
	for _, k := range kids {
		for start := time.Now(); time.Since(start) < 5*time.Second; time.Sleep(10 * time.Millisecond) {
			// Killed descendants are reaped by init (or a subreaper); until then they are zombies.
			b, err := os.ReadFile("/proc/" + strconv.Itoa(k) + "/stat")
			if err != nil || strings.Contains(string(b), ") Z ") {
				break
			}
			if time.Since(start) > 4*time.Second {
				t.Errorf("descendant %d survived: %s", k, b)
			}
		}
	}
}
