package sysctl

import (
	"testing"

	"github.com/berthcri/berth/internal/errdefs"
)

func TestClassify(t *testing.T) {
	tests := map[string]struct {
		name     string
		kind     Namespace
		path     string
		rejected bool
	}{
		"net":                  {name: "net.ipv4.ip_forward", kind: Net, path: "/proc/sys/net/ipv4/ip_forward"},
		"net slashed":          {name: "net/ipv4/ping_group_range", kind: Net, path: "/proc/sys/net/ipv4/ping_group_range"},
		"vlan dotted":          {name: "net.ipv4.conf.eth0/100.forwarding", kind: Net, path: "/proc/sys/net/ipv4/conf/eth0.100/forwarding"},
		"vlan slashed":         {name: "net/ipv4/conf/eth0.100/forwarding", kind: Net, path: "/proc/sys/net/ipv4/conf/eth0.100/forwarding"},
		"shm":                  {name: "kernel.shmmax", kind: IPC, path: "/proc/sys/kernel/shmmax"},
		"sem":                  {name: "kernel.sem", kind: IPC, path: "/proc/sys/kernel/sem"},
		"shm_rmid_forced":      {name: "kernel.shm_rmid_forced", kind: IPC, path: "/proc/sys/kernel/shm_rmid_forced"},
		"mqueue":               {name: "fs.mqueue.msg_max", kind: IPC, path: "/proc/sys/fs/mqueue/msg_max"},
		"domainname":           {name: "kernel.domainname", kind: UTS, path: "/proc/sys/kernel/domainname"},
		"hostname conflicts":   {name: "kernel.hostname", rejected: true},
		"host-wide kernel":     {name: "kernel.pid_max", rejected: true},
		"host-wide vm":         {name: "vm.overcommit_memory", rejected: true},
		"fs not mqueue":        {name: "fs.file-max", rejected: true},
		"prefix only":          {name: "kernel.shm", rejected: true},
		"empty component":      {name: "net..ipv4", rejected: true},
		"dot-dot escape":       {name: "net/ipv4/../../kernel/core_pattern", rejected: true},
		"dot component dotted": {name: "net.ipv4./.x", rejected: true},
		"trailing separator":   {name: "net.ipv4.", rejected: true},
		"empty":                {name: "", rejected: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			kind, err := Classify(tc.name)
			if tc.rejected {
				if !errdefs.IsInvalidArgument(err) {
					t.Fatalf("Classify(%q) = %q, %v; want invalid argument", tc.name, kind, err)
				}
				return
			}
			if err != nil || kind != tc.kind {
				t.Fatalf("Classify(%q) = %q, %v; want %q", tc.name, kind, err, tc.kind)
			}
			if got := Path(tc.name); got != tc.path {
				t.Errorf("Path(%q) = %q, want %q", tc.name, got, tc.path)
			}
		})
	}
}
