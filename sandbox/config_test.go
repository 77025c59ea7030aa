package sandbox

import (
	"strings"
	"testing"

	"github.com/berthcri/berth/internal/errdefs"
)

func TestConfigValidate(t *testing.T) {
	hostNet := NamespaceOptions{Network: NamespaceNode}
	tests := map[string]struct {
		cfg   Config
		field string // "" valid, else the field the error names
	}{
		"minimal":                {cfg: Config{ID: "abc123"}},
		"full":                   {cfg: Config{ID: "abc", Hostname: "web-0", DNS: DNSConfig{Servers: []string{"10.0.0.10"}, Options: []string{"ndots:5"}}, Sysctls: map[string]string{"net.ipv4.ip_forward": "1", "kernel.shmmax": "1"}}},
		"id with dash":           {cfg: Config{ID: "a-b"}, field: "pod id"},
		"id with slash":          {cfg: Config{ID: "../x"}, field: "pod id"},
		"empty id":               {cfg: Config{}, field: "pod id"},
		"long hostname":          {cfg: Config{ID: "a", Hostname: strings.Repeat("h", 65)}, field: "hostname"},
		"hostname with newline":  {cfg: Config{ID: "a", Hostname: "a\n1.2.3.4 evil"}, field: "hostname"},
		"network container":      {cfg: Config{ID: "a", Namespaces: NamespaceOptions{Network: NamespaceContainer}}, field: "namespace_options.network"},
		"ipc target":             {cfg: Config{ID: "a", Namespaces: NamespaceOptions{IPC: NamespaceTarget}}, field: "namespace_options.ipc"},
		"pid target":             {cfg: Config{ID: "a", Namespaces: NamespaceOptions{PID: NamespaceTarget}}, field: "namespace_options.pid"},
		"pid container":          {cfg: Config{ID: "a", Namespaces: NamespaceOptions{PID: NamespaceContainer}}},
		"server with space":      {cfg: Config{ID: "a", DNS: DNSConfig{Servers: []string{"1.1.1.1 2.2.2.2"}}}, field: "dns_config.servers"},
		"search with newline":    {cfg: Config{ID: "a", DNS: DNSConfig{Searches: []string{"a\nnameserver 6.6.6.6"}}}, field: "dns_config.searches"},
		"empty option":           {cfg: Config{ID: "a", DNS: DNSConfig{Options: []string{""}}}, field: "dns_config.options"},
		"host sysctl":            {cfg: Config{ID: "a", Sysctls: map[string]string{"vm.swappiness": "1"}}, field: "sysctls"},
		"net sysctl host net":    {cfg: Config{ID: "a", Namespaces: hostNet, Sysctls: map[string]string{"net.ipv4.ip_forward": "1"}}, field: "sysctls"},
		"domainname host net":    {cfg: Config{ID: "a", Namespaces: hostNet, Sysctls: map[string]string{"kernel.domainname": "x"}}, field: "sysctls"},
		"ipc sysctl host ipc":    {cfg: Config{ID: "a", Namespaces: NamespaceOptions{IPC: NamespaceNode}, Sysctls: map[string]string{"kernel.shmmax": "1"}}, field: "sysctls"},
		"ipc sysctl host net ok": {cfg: Config{ID: "a", Namespaces: hostNet, Sysctls: map[string]string{"kernel.shmmax": "1"}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := tc.cfg.validate()
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errdefs.IsInvalidArgument(err) || !strings.HasPrefix(err.Error(), tc.field+":") {
				t.Fatalf("got %v, want invalid argument naming %s", err, tc.field)
			}
		})
	}
}
