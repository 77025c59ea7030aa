package apparmor

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden profiles in testdata/")

func TestProfileGolden(t *testing.T) {
	for name, f := range map[string]Features{
		// Debian 12: apparmor 3.0, kernel 6.1.
		"apparmor3": {ABI3: true, Tunables: true, AbstractionsBase: true, Signal: true, Ptrace: true},
		// Debian 11: apparmor 2.13 (no ABI files).
		"apparmor2": {Tunables: true, AbstractionsBase: true, Signal: true, Ptrace: true},
		// No policy files and a kernel mediating neither signals nor ptrace.
		"bare": {},
	} {
		t.Run(name, func(t *testing.T) {
			got := Profile(DefaultName, f)
			golden := filepath.Join("testdata", name+".profile")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("profile differs from %s (go test -update to rewrite):\n%s", golden, got)
			}
		})
	}
}

func TestLoadedIn(t *testing.T) {
	file := filepath.Join(t.TempDir(), "profiles")
	list := "cri-validate-apparmor-test-deny-write (enforce)\n/usr/bin/man (enforce)\nwith space (complain)\nberth-default//null-x (enforce)\n"
	if err := os.WriteFile(file, []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"cri-validate-apparmor-test-deny-write": true, "/usr/bin/man": true, "with space": true,
		"berth-default": false, "cri-validate": false, "": false,
	} {
		if got, err := loadedIn(file, name); err != nil || got != want {
			t.Errorf("loadedIn(%q) = %v, %v; want %v", name, got, err, want)
		}
	}
	if _, err := loadedIn(filepath.Join(t.TempDir(), "none"), "x"); err == nil {
		t.Error("a missing profiles file is no error")
	}
}

// fakeParser is an apparmor_parser that records each profile text it gets and "loads" it into the profiles file
// (fails when the text has "FAIL").
func fakeParser(t *testing.T, dir string) (parser, profiles, loads string) {
	parser, profiles, loads = filepath.Join(dir, "apparmor_parser"), filepath.Join(dir, "profiles"), filepath.Join(dir, "loads")
	script := `#!/bin/sh
[ "$1" = -Kr ] || { echo "bad args $*" >&2; exit 2; }
text=$(cat)
case "$text" in *FAIL*) echo "syntax error" >&2; exit 1;; esac
echo "$text" | sed -n 's/^profile \([^ ]*\) .*/\1 (enforce)/p' >> ` + profiles + `
echo load >> ` + loads + `
`
	if err := os.WriteFile(parser, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(profiles, []byte("other (enforce)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return parser, profiles, loads
}

func countLoads(t *testing.T, loads string) int {
	b, err := os.ReadFile(loads)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "load\n")
}

func TestDefaultEnsure(t *testing.T) {
	ctx := context.Background()
	dir, state := t.TempDir(), t.TempDir()
	parser, profiles, loads := fakeParser(t, dir)
	newDefault := func(f Features) *Default {
		d := NewDefault(parser, state, f)
		d.profiles = profiles
		return d
	}
	d := newDefault(Features{})
	step := func(what string, d *Default, wantLoads int) {
		t.Helper()
		if err := d.Ensure(ctx); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if n := countLoads(t, loads); n != wantLoads {
			t.Fatalf("%s: %d loads, want %d", what, n, wantLoads)
		}
	}
	step("missing profile", d, 1)
	step("loaded", d, 1)
	step("loaded, by an earlier berthd", newDefault(Features{}), 1)
	step("loaded, text changed", newDefault(Features{Signal: true}), 2)
	if err := os.WriteFile(profiles, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	step("unloaded behind berthd's back", d, 3)

	bad := newDefault(Features{})
	bad.text = []byte("profile berth-default FAIL {}")
	if err := os.WriteFile(profiles, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := bad.Ensure(ctx); err == nil || !strings.Contains(err.Error(), "syntax error") {
		t.Fatalf("a failing parser: %v, want its output", err)
	}
	silent := newDefault(Features{})
	silent.text = []byte("# loads nothing")
	if err := silent.Ensure(ctx); err == nil || !strings.Contains(err.Error(), "not loaded") {
		t.Fatalf("a parser that loads nothing: %v", err)
	}
}
