package sandbox

import (
	"net/netip"
	"testing"
)

func TestRenderResolvConf(t *testing.T) {
	tests := map[string]struct {
		in   DNSConfig
		want string
	}{
		"empty copies the host's": {DNSConfig{}, ""},
		"servers only":            {DNSConfig{Servers: []string{"10.0.0.10", "fd00::10"}}, "nameserver 10.0.0.10\nnameserver fd00::10\n"},
		"all": {
			DNSConfig{Servers: []string{"8.8.8.8"}, Searches: []string{"default.svc.cluster.local", "svc.cluster.local"}, Options: []string{"ndots:5", "edns0"}},
			"search default.svc.cluster.local svc.cluster.local\nnameserver 8.8.8.8\noptions ndots:5 edns0\n",
		},
		"searches and options": {DNSConfig{Searches: []string{"example.com"}, Options: []string{"ndots:2"}}, "search example.com\noptions ndots:2\n"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := renderResolvConf(tc.in)
			if string(got) != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if tc.want == "" && got != nil {
				t.Errorf("empty config: got %q, want nil (copy the host's)", got)
			}
		})
	}
}

func TestRenderHosts(t *testing.T) {
	const base = "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n"
	tests := map[string]struct {
		hostname string
		ips      []netip.Addr
		want     string
	}{
		"loopback only": {"web-0", nil, base},
		"one address":   {"web-0", []netip.Addr{netip.MustParseAddr("10.88.0.5")}, base + "10.88.0.5\tweb-0\n"},
		"dual stack": {"web-0", []netip.Addr{netip.MustParseAddr("10.88.0.5"), netip.MustParseAddr("fd00::5")},
			base + "10.88.0.5\tweb-0\nfd00::5\tweb-0\n"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := string(renderHosts(tc.hostname, tc.ips)); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
