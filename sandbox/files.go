package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"strings"
)

// The host files a pod falls back to: host-network pods see the host's hosts file (as with the kubelet
// and containerd), and a pod without DNS config gets the host's resolv.conf (as with containerd).
var (
	hostHostsFile  = "/etc/hosts"
	hostResolvConf = "/etc/resolv.conf"
)

// renderResolvConf returns the resolv.conf for a DNS config, or nil when the config is empty.
// The layout is containerd's: search, nameservers, options.
func renderResolvConf(d DNSConfig) []byte {
	var b bytes.Buffer
	if len(d.Searches) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(d.Searches, " "))
	}
	for _, s := range d.Servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(d.Options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(d.Options, " "))
	}
	if b.Len() == 0 {
		return nil
	}
	return b.Bytes()
}

// renderHosts returns the kubelet's managed hosts file: localhost lines, then the pod's hostname on each of
// its addresses (none until a network setup reports some).
func renderHosts(hostname string, ips []netip.Addr) []byte {
	var b bytes.Buffer
	b.WriteString("# Kubernetes-managed hosts file.\n" +
		"127.0.0.1\tlocalhost\n" +
		"::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"fe00::0\tip6-localnet\n" +
		"fe00::0\tip6-mcastprefix\n" +
		"fe00::1\tip6-allnodes\n" +
		"fe00::2\tip6-allrouters\n")
	for _, ip := range ips {
		fmt.Fprintf(&b, "%s\t%s\n", ip, hostname)
	}
	return b.Bytes()
}

// writeFiles writes the files that are bind-mounted into every container of the pod: hostname, hosts and
// resolv.conf. They are plain files in a fresh dir no container uses yet, so no atomic replace is needed.
func writeFiles(p *Pod, hostname string) error {
	if err := os.WriteFile(p.HostnamePath(), []byte(hostname+"\n"), 0o644); err != nil {
		return err
	}
	var ips []netip.Addr
	if p.network != nil {
		ips = p.network.IPs
	}
	hosts := renderHosts(hostname, ips)
	if p.cfg.Namespaces.Network == NamespaceNode {
		var err error
		if hosts, err = readHostFile(hostHostsFile, hosts); err != nil {
			return err
		}
	}
	if err := os.WriteFile(p.HostsPath(), hosts, 0o644); err != nil {
		return err
	}
	resolv := renderResolvConf(p.cfg.DNS)
	if resolv == nil {
		var err error
		if resolv, err = readHostFile(hostResolvConf, nil); err != nil {
			return err
		}
	}
	return os.WriteFile(p.ResolvPath(), resolv, 0o644)
}

// readHostFile reads one of the host's files, or returns fallback when the host has none.
func readHostFile(path string, fallback []byte) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fallback, nil
	}
	return b, err
}
