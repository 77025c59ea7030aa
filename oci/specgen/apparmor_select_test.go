package specgen

import (
	"errors"
	"strings"
	"testing"

	"github.com/berthcri/berth/internal/errdefs"
)

// loadedProfiles is a HostFS whose kernel has the AppArmor profiles named.
type loadedProfiles struct {
	fakeFS
	names []string
}

func (l *loadedProfiles) AppArmorLoaded(name string) (bool, error) {
	for _, n := range l.names {
		if n == name {
			return true, nil
		}
	}
	return false, nil
}

func TestAppArmorProfileSelection(t *testing.T) {
	localhost := func(ref string) *SecurityProfile {
		return &SecurityProfile{ProfileType: ProfileTypeLocalhost, LocalhostRef: ref}
	}
	runtimeDefault := &SecurityProfile{ProfileType: ProfileTypeRuntimeDefault}
	unconfined := &SecurityProfile{ProfileType: ProfileTypeUnconfined}
	for _, tc := range []struct {
		name      string
		enabled   bool   // AppArmor on the host
		def       string // Host.AppArmorDefaultProfile
		sc        LinuxContainerSecurityContext
		want      string
		wantErr   error
		wantField string
	}{
		{name: "unset gets the default", enabled: true, def: "berth-default", want: "berth-default"},
		{name: "runtime default", enabled: true, def: "berth-default", sc: LinuxContainerSecurityContext{Apparmor: runtimeDefault}, want: "berth-default"},
		{name: "deprecated runtime/default", enabled: true, def: "berth-default", sc: LinuxContainerSecurityContext{ApparmorProfile: "runtime/default"}, want: "berth-default"},
		{name: "no default profile loadable: unconfined", enabled: true, sc: LinuxContainerSecurityContext{Apparmor: runtimeDefault}},
		{name: "unconfined", enabled: true, def: "berth-default", sc: LinuxContainerSecurityContext{Apparmor: unconfined}},
		{name: "deprecated unconfined", enabled: true, def: "berth-default", sc: LinuxContainerSecurityContext{ApparmorProfile: "unconfined"}},
		{name: "localhost loaded", enabled: true, def: "berth-default", sc: LinuxContainerSecurityContext{Apparmor: localhost("localhost/test-deny-write")}, want: "test-deny-write"},
		{name: "localhost without prefix", enabled: true, def: "berth-default", sc: LinuxContainerSecurityContext{Apparmor: localhost("test-deny-write")}, want: "test-deny-write"},
		{name: "deprecated localhost loaded", enabled: true, def: "berth-default", sc: LinuxContainerSecurityContext{ApparmorProfile: "localhost/test-deny-write"}, want: "test-deny-write"},
		{name: "new field wins", enabled: true, def: "berth-default",
			sc:   LinuxContainerSecurityContext{ApparmorProfile: "localhost/not-loaded", Apparmor: localhost("localhost/test-deny-write")},
			want: "test-deny-write"},
		{name: "localhost not loaded", enabled: true, def: "berth-default", sc: LinuxContainerSecurityContext{Apparmor: localhost("localhost/not-loaded")},
			wantErr: errdefs.ErrFailedPrecondition, wantField: "linux.security_context.apparmor.localhost_ref"},
		{name: "deprecated localhost not loaded", enabled: true, def: "berth-default", sc: LinuxContainerSecurityContext{ApparmorProfile: "localhost/not-loaded"},
			wantErr: errdefs.ErrFailedPrecondition, wantField: "linux.security_context.apparmor_profile"},
		{name: "localhost empty", enabled: true, sc: LinuxContainerSecurityContext{Apparmor: localhost("")},
			wantErr: errdefs.ErrInvalidArgument, wantField: "linux.security_context.apparmor.localhost_ref"},
		{name: "deprecated unknown", enabled: true, sc: LinuxContainerSecurityContext{ApparmorProfile: "strict"},
			wantErr: errdefs.ErrInvalidArgument, wantField: "linux.security_context.apparmor_profile"},
		// Privileged containers run unconfined unless a Localhost profile is named (containerd).
		{name: "privileged unset", enabled: true, def: "berth-default", sc: LinuxContainerSecurityContext{Privileged: true}},
		{name: "privileged runtime default", enabled: true, def: "berth-default", sc: LinuxContainerSecurityContext{Privileged: true, Apparmor: runtimeDefault}},
		{name: "privileged localhost", enabled: true, def: "berth-default",
			sc: LinuxContainerSecurityContext{Privileged: true, Apparmor: localhost("localhost/test-deny-write")}, want: "test-deny-write"},
		{name: "privileged localhost not loaded", enabled: true, def: "berth-default",
			sc:      LinuxContainerSecurityContext{Privileged: true, Apparmor: localhost("localhost/not-loaded")},
			wantErr: errdefs.ErrFailedPrecondition, wantField: "linux.security_context.apparmor.localhost_ref"},
		// A host without AppArmor: nothing is set, but a Localhost profile cannot be honoured.
		{name: "disabled unset"},
		{name: "disabled runtime default", sc: LinuxContainerSecurityContext{Apparmor: runtimeDefault}},
		{name: "disabled localhost", sc: LinuxContainerSecurityContext{Apparmor: localhost("localhost/test-deny-write")},
			wantErr: errdefs.ErrFailedPrecondition, wantField: "linux.security_context.apparmor"},
		{name: "disabled privileged localhost", sc: LinuxContainerSecurityContext{Privileged: true, Apparmor: localhost("test-deny-write")},
			wantErr: errdefs.ErrFailedPrecondition, wantField: "linux.security_context.apparmor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := &Host{AppArmor: tc.enabled, AppArmorDefaultProfile: tc.def,
				FS: &loadedProfiles{names: []string{"berth-default", "test-deny-write"}}}
			got, err := apparmorProfile(&tc.sc, host)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.wantField) {
					t.Fatalf("got %q, %v; want an error wrapping %v naming %s", got, err, tc.wantErr, tc.wantField)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
