package specgen

import (
	"testing"

	"github.com/berthcri/berth/internal/errdefs"
)

func TestValidateSysctls(t *testing.T) {
	cases := map[string]struct {
		key                  string
		hostNetwork, hostIPC bool
		ok                   bool
	}{
		"net":                  {key: "net.ipv4.ip_forward", ok: true},
		"net slashed":          {key: "net/ipv4/ping_group_range", ok: true},
		"net with host net":    {key: "net.ipv4.ip_forward", hostNetwork: true},
		"ipc":                  {key: "kernel.shmmax", ok: true},
		"ipc with host net":    {key: "kernel.shm_rmid_forced", hostNetwork: true, ok: true},
		"ipc with host ipc":    {key: "kernel.shmmax", hostIPC: true},
		"mqueue":               {key: "fs.mqueue.msg_max", ok: true},
		"domainname":           {key: "kernel.domainname", ok: true},
		"domainname, host net": {key: "kernel.domainname", hostNetwork: true},
		"hostname":             {key: "kernel.hostname"},
		"host-wide":            {key: "kernel.panic"},
		"escape":               {key: "net/ipv4/../../kernel/core_pattern"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := ValidateSysctls(map[string]string{tc.key: "1"}, tc.hostNetwork, tc.hostIPC)
			if tc.ok != (err == nil) || err != nil && !errdefs.IsInvalidArgument(err) {
				t.Errorf("ValidateSysctls(%q, hostNet=%v, hostIPC=%v) = %v", tc.key, tc.hostNetwork, tc.hostIPC, err)
			}
		})
	}
}
