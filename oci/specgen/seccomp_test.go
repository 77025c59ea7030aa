package specgen

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/internal/errdefs"
)

// verdict evaluates a filter for a syscall called with all-zero arguments, the way libseccomp does for
// rules without argument conditions (rules with conditions are skipped: they match only some calls).
func verdict(p *specs.LinuxSeccomp, name string) specs.LinuxSeccompAction {
	for _, r := range p.Syscalls {
		if len(r.Args) == 0 && slices.Contains(r.Names, name) {
			return r.Action
		}
	}
	return p.DefaultAction
}

func defaultProfileFor(t *testing.T, mod func(*SpecInput)) *specs.LinuxSeccomp {
	t.Helper()
	in := baseInput()
	sc(&in).Seccomp = &SecurityProfile{ProfileType: ProfileTypeRuntimeDefault}
	mod(&in)
	s, err := Spec(in)
	if err != nil {
		t.Fatal(err)
	}
	if s.Linux.Seccomp == nil {
		t.Fatal("no seccomp profile")
	}
	return s.Linux.Seccomp
}

func TestDefaultSeccompBlocks(t *testing.T) {
	plain := defaultProfileFor(t, func(*SpecInput) {})
	sysAdmin := defaultProfileFor(t, func(in *SpecInput) {
		sc(in).Capabilities = &Capability{AddCapabilities: []string{"SYS_ADMIN"}}
	})
	if plain.DefaultAction != specs.ActErrno || plain.DefaultErrnoRet == nil || *plain.DefaultErrnoRet != 1 {
		t.Errorf("default action %s errno %v, want SCMP_ACT_ERRNO EPERM", plain.DefaultAction, plain.DefaultErrnoRet)
	}
	if runtime.GOARCH == "amd64" && !slices.Contains(plain.Architectures, specs.ArchX86_64) {
		t.Errorf("architectures %v lack x86_64", plain.Architectures)
	}
	for _, tc := range []struct {
		syscall        string
		plain, withCap specs.LinuxSeccompAction
	}{
		{"read", specs.ActAllow, specs.ActAllow},
		{"execve", specs.ActAllow, specs.ActAllow},
		{"kexec_load", specs.ActErrno, specs.ActErrno}, // needs CAP_SYS_BOOT
		{"open_by_handle_at", specs.ActErrno, specs.ActErrno},
		{"unshare", specs.ActErrno, specs.ActAllow},
		{"setns", specs.ActErrno, specs.ActAllow},
		{"mount", specs.ActErrno, specs.ActAllow},
		{"sethostname", specs.ActErrno, specs.ActAllow},
		{"bpf", specs.ActErrno, specs.ActAllow},
		{"clone3", specs.ActErrno, specs.ActAllow}, // ENOSYS, so that libc falls back to clone
		{"reboot", specs.ActErrno, specs.ActErrno},
		{"init_module", specs.ActErrno, specs.ActErrno},
		{"add_key", specs.ActErrno, specs.ActErrno},
	} {
		if got := verdict(plain, tc.syscall); got != tc.plain {
			t.Errorf("%s with default capabilities: %s, want %s", tc.syscall, got, tc.plain)
		}
		if got := verdict(sysAdmin, tc.syscall); got != tc.withCap {
			t.Errorf("%s with CAP_SYS_ADMIN: %s, want %s", tc.syscall, got, tc.withCap)
		}
	}
}

func TestDefaultSeccompCache(t *testing.T) {
	caps := capNames(0x000001fffeffffff)
	a, err := defaultSeccomp(caps)
	if err != nil {
		t.Fatal(err)
	}
	a.Syscalls[0].Names[0] = "changed"
	a.Syscalls = a.Syscalls[:1]
	b, err := defaultSeccomp(caps)
	if err != nil {
		t.Fatal(err)
	}
	if b.Syscalls[0].Names[0] == "changed" || len(b.Syscalls) == 1 {
		t.Fatal("changing a returned profile changed the cache")
	}
	c, _ := defaultSeccomp(caps)
	if !reflect.DeepEqual(b, c) {
		t.Fatal("the same capabilities gave different profiles")
	}
	other, _ := defaultSeccomp(capNames(1))
	if reflect.DeepEqual(b, other) {
		t.Fatal("different capabilities gave the same profile")
	}
}

func TestSeccompDeprecatedPaths(t *testing.T) {
	for path, want := range map[string]bool{"": false, "unconfined": false, "runtime/default": true, "docker/default": true} {
		in := baseInput()
		sc(&in).SeccompProfilePath = path
		s, err := Spec(in)
		if err != nil {
			t.Fatalf("%q: %v", path, err)
		}
		if got := s.Linux.Seccomp != nil; got != want {
			t.Errorf("%q: filtered = %v, want %v", path, got, want)
		}
	}
}

func BenchmarkDefaultSeccompUncached(b *testing.B) {
	caps := capNames(0x000001fffeffffff)
	for b.Loop() {
		defaultProfiles.Lock()
		defaultProfiles.m = nil
		defaultProfiles.Unlock()
		if _, err := defaultSeccomp(caps); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSeccompLocalhostHostileFiles reads Localhost profiles through the real host filesystem: a device, a FIFO, a
// directory, a file over MaxProfileSize, a symlink to a device must each fail at once with InvalidArgument naming
// the field, and nothing more than the cap is ever buffered.
func TestSeccompLocalhostHostileFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.json")
	if err := os.WriteFile(big, bytes.Repeat([]byte(" "), MaxProfileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "zero-link")
	if err := os.Symlink("/dev/zero", link); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.json")
	if err := os.WriteFile(good, []byte(`{"defaultAction": "SCMP_ACT_ALLOW"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	goodLink := filepath.Join(dir, "good-link.json")
	if err := os.Symlink(good, goodLink); err != nil {
		t.Fatal(err)
	}
	const field = "linux.security_context.seccomp.localhost_ref"
	for name, tc := range map[string]struct {
		path string
		want string // in the error; "" for success
	}{
		"dev-zero":        {"/dev/zero", "not a regular file"},
		"fifo":            {fifo, "not a regular file"},
		"directory":       {dir, "not a regular file"},
		"over-cap":        {big, "over the limit"},
		"symlink-to-dev":  {link, "not a regular file"},
		"regular":         {good, ""},
		"symlink-to-file": {goodLink, ""},
	} {
		t.Run(name, func(t *testing.T) {
			sc := &LinuxContainerSecurityContext{Seccomp: &SecurityProfile{ProfileType: ProfileTypeLocalhost, LocalhostRef: tc.path}}
			done := make(chan error, 1)
			go func() {
				_, err := seccompProfile(sc, []string{"CAP_CHOWN"}, systemFS{})
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(5 * time.Second):
				t.Fatalf("reading %s hangs", tc.path)
			}
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("%s: %v", tc.path, err)
			case tc.want == "":
			case !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), field) || !strings.Contains(err.Error(), tc.want):
				t.Fatalf("%s: got %v, want InvalidArgument naming %s and saying %q", tc.path, err, field, tc.want)
			}
		})
	}
}
