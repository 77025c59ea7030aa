package cdi

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthcri/berth/internal/errdefs"
)

// goodSpec defines test.berth.io/dev=null (a node with /dev/null's numbers), =mnt (a read-only mount) and =hook,
// and spec-wide env.
const goodSpec = `cdiVersion: "0.7.0"
kind: test.berth.io/dev
containerEdits:
  env: ["BERTH_CDI_SPEC=1"]
devices:
- name: "null"
  containerEdits:
    deviceNodes:
    - path: /dev/berth-cdi-null
      hostPath: /dev/null
    additionalGids: [4242]
- name: mnt
  containerEdits:
    env: ["BERTH_CDI_MNT=yes"]
    mounts:
    - hostPath: /etc
      containerPath: /berth-cdi
      options: [ro, bind]
- name: hook
  containerEdits:
    hooks:
    - hookName: createContainer
      path: /bin/true
`

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newRegistry(t *testing.T, files map[string]string) (*Registry, string, *syncBuffer) {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	log := &syncBuffer{}
	// The trailing slash: dirs are matched to the library's directory errors cleaned.
	r := New([]string{dir, filepath.Join(dir, "missing") + "/"}, slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(r.Close)
	return r, dir, log
}

func baseSpec() *specs.Spec {
	return &specs.Spec{
		Process: &specs.Process{Args: []string{"sh"}, Env: []string{"PATH=/bin"}, User: specs.User{UID: 0, GID: 0}},
		Linux:   &specs.Linux{Resources: &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}}},
	}
}

func TestInject(t *testing.T) {
	r, _, _ := newRegistry(t, map[string]string{"test.yaml": goodSpec})
	spec := baseSpec()
	if err := r.Inject(spec, []string{"test.berth.io/dev=null", "test.berth.io/dev=mnt", "test.berth.io/dev=hook"}); err != nil {
		t.Fatal(err)
	}
	if len(spec.Linux.Devices) != 1 {
		t.Fatalf("devices %+v, want one", spec.Linux.Devices)
	}
	d := spec.Linux.Devices[0]
	if d.Path != "/dev/berth-cdi-null" || d.Type != "c" || d.Major != 1 || d.Minor != 3 {
		t.Errorf("device %+v, want /dev/berth-cdi-null c 1:3", d)
	}
	rules := spec.Linux.Resources.Devices
	if last := rules[len(rules)-1]; !last.Allow || last.Type != "c" || *last.Major != 1 || *last.Minor != 3 || last.Access != "rwm" {
		t.Errorf("last cgroup rule %+v, want allow c 1:3 rwm after the deny-all", last)
	}
	for _, e := range []string{"PATH=/bin", "BERTH_CDI_SPEC=1", "BERTH_CDI_MNT=yes"} {
		if !slices.Contains(spec.Process.Env, e) {
			t.Errorf("env %q lacks %q", spec.Process.Env, e)
		}
	}
	if !slices.ContainsFunc(spec.Mounts, func(m specs.Mount) bool {
		return m.Destination == "/berth-cdi" && m.Source == "/etc" && slices.Contains(m.Options, "ro")
	}) {
		t.Errorf("mounts %+v lack /etc on /berth-cdi, read-only", spec.Mounts)
	}
	if spec.Hooks == nil || len(spec.Hooks.CreateContainer) != 1 || spec.Hooks.CreateContainer[0].Path != "/bin/true" {
		t.Errorf("hooks %+v, want one createContainer hook", spec.Hooks)
	}
	if !slices.Contains(spec.Process.User.AdditionalGids, 4242) {
		t.Errorf("additional gids %v lack 4242", spec.Process.User.AdditionalGids)
	}
}

func TestInjectErrors(t *testing.T) {
	missingNode := strings.Replace(goodSpec, "kind: test.berth.io/dev", "kind: test.berth.io/gone", 1)
	missingNode = strings.Replace(missingNode, "hostPath: /dev/null", "hostPath: /dev/berth-no-such-node", 1)
	r, dir, log := newRegistry(t, map[string]string{"test.yaml": goodSpec, "gone.yaml": missingNode, "broken.yaml": "cdiVersion: [\n"})
	cases := map[string]struct {
		devices []string
		is      func(error) bool
		want    []string
	}{
		"unknown device": {[]string{"test.berth.io/dev=null", "test.berth.io/dev=nope"}, errdefs.IsNotFound,
			[]string{`CDI device "test.berth.io/dev=nope": not defined by any spec in ` + dir, filepath.Join(dir, "broken.yaml")}},
		"unknown vendor": {[]string{"other.io/x=y"}, errdefs.IsNotFound, []string{`"other.io/x=y"`}},
		"host node missing": {[]string{"test.berth.io/gone=null"}, errdefs.IsFailedPrecondition,
			[]string{`CDI device "test.berth.io/gone=null"`, "/dev/berth-no-such-node"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := r.Inject(baseSpec(), tc.devices)
			if !tc.is(err) {
				t.Fatalf("Inject = %v, of the wrong kind", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	// The broken file is logged once, by name, and does not take the good file's devices with it.
	if err := r.Inject(baseSpec(), []string{"test.berth.io/dev=null"}); err != nil {
		t.Errorf("a device of a good file beside a broken one: %v", err)
	}
	if n := strings.Count(log.String(), "CDI spec file has errors"); n != 1 || !strings.Contains(log.String(), "broken.yaml") {
		t.Errorf("want the broken file logged once by name, log:\n%s", log)
	}
	if strings.Contains(log.String(), "level=WARN msg=\"CDI spec dir not watched\"") || !strings.Contains(log.String(), "level=DEBUG msg=\"CDI spec dir not watched\"") {
		t.Errorf("a missing spec dir is not logged at debug level:\n%s", log)
	}
}

// TestRefresh checks that a spec file written after start, and one fixed after start, are picked up by the watch.
func TestRefresh(t *testing.T) {
	r, dir, log := newRegistry(t, map[string]string{"broken.json": "{"})
	eventually := func(what string, devices ...string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := r.Inject(baseSpec(), devices)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: still %v", what, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if err := r.Inject(baseSpec(), []string{"test.berth.io/dev=null"}); !errdefs.IsNotFound(err) {
		t.Fatalf("before the spec is written: %v, want NotFound", err)
	}
	// Written as drivers do, to a temp name and renamed, so that the watch never reads half a file.
	tmp := filepath.Join(dir, ".new")
	if err := os.WriteFile(tmp, []byte(goodSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "test.yaml")); err != nil {
		t.Fatal(err)
	}
	eventually("new spec file", "test.berth.io/dev=null")

	fixed := `{"cdiVersion":"0.6.0","kind":"fixed.berth.io/c","devices":[{"name":"a","containerEdits":{"env":["A=1"]}}]}`
	if err := os.WriteFile(filepath.Join(dir, "broken.json"), []byte(fixed), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually("fixed spec file", "fixed.berth.io/c=a")
	// The watch may refresh between a call's lookup and its check of the errors: the next call logs the change.
	if err := r.Inject(baseSpec(), []string{"fixed.berth.io/c=a"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "CDI spec file errors cleared") {
		t.Errorf("the fixed file is not logged:\n%s", log)
	}

	// A spec dir created after start is watched from then on.
	late := filepath.Join(dir, "missing")
	if err := os.Mkdir(late, 0o755); err != nil {
		t.Fatal(err)
	}
	late2 := strings.Replace(goodSpec, "kind: test.berth.io/dev", "kind: late.berth.io/dev", 1)
	eventually("the dir appears", "test.berth.io/dev=null") // restores its watch
	if err := os.WriteFile(filepath.Join(late, "late.yaml"), []byte(late2), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually("spec in a dir made after start", "late.berth.io/dev=mnt")
}

func TestValidName(t *testing.T) {
	for name, ok := range map[string]bool{
		"vendor.com/class=name":      true,
		"nvidia.com/gpu=all":         true,
		"a.b/c=0:1_2-3.x":            true,
		"":                           false,
		"vendor.com/class":           false,
		"class=name":                 false,
		"vendor.com/class=":          false,
		"vendor.com/class=na me":     false,
		"vendor.com/class=../../etc": false,
	} {
		if err := ValidName(name); (err == nil) != ok {
			t.Errorf("ValidName(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}
