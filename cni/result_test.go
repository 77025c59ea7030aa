package cni

import (
	"fmt"
	"testing"

	"github.com/containernetworking/cni/pkg/version"
)

func TestPodIPs(t *testing.T) {
	const ifaces = `"interfaces":[{"name":"cni0"},{"name":"veth1"},{"name":"eth0","sandbox":"/run/netns/p"}]`
	cases := map[string]struct {
		result string
		want   string
	}{
		"ipv4": {result: `{"cniVersion":"1.0.0",` + ifaces + `,"ips":[{"address":"10.89.0.5/24","interface":2}]}`,
			want: "[10.89.0.5]"},
		"ipv6 listed first": {result: `{"cniVersion":"1.0.0",` + ifaces + `,"ips":[{"address":"fd00::5/64","interface":2},` +
			`{"address":"10.89.0.5/24","interface":2},{"address":"fd00::6/64","interface":2},{"address":"10.89.0.6/24","interface":2}]}`,
			want: "[10.89.0.5 10.89.0.6 fd00::5 fd00::6]"},
		"host side skipped": {result: `{"cniVersion":"1.0.0",` + ifaces + `,"ips":[{"address":"10.89.0.1/24","interface":0},` +
			`{"address":"10.89.0.5/24","interface":2}]}`, want: "[10.89.0.5]"},
		"bad interface index": {result: `{"cniVersion":"1.0.0",` + ifaces + `,"ips":[{"address":"10.89.0.7/24","interface":9}]}`,
			want: "[]"},
		"no interface named": {result: `{"cniVersion":"1.0.0","ips":[{"address":"10.89.0.5/24"}]}`, want: "[10.89.0.5]"},
		"duplicates": {result: `{"cniVersion":"1.0.0",` + ifaces + `,"ips":[{"address":"10.89.0.5/24","interface":2},` +
			`{"address":"10.89.0.5/16","interface":2}]}`, want: "[10.89.0.5]"},
		"old version": {result: `{"cniVersion":"0.3.1",` + ifaces + `,"ips":[{"version":"4","address":"10.89.0.5/24","interface":2}]}`,
			want: "[10.89.0.5]"},
		"no ips": {result: `{"cniVersion":"1.0.0"}`, want: "[]"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			res, err := version.NewResult(versionOf(t, tc.result), []byte(tc.result))
			if err != nil {
				t.Fatal(err)
			}
			ips, err := podIPs(res)
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(ips); got != tc.want {
				t.Errorf("podIPs = %s, want %s", got, tc.want)
			}
		})
	}
}

func versionOf(t *testing.T, result string) string {
	t.Helper()
	v, err := (&version.ConfigDecoder{}).Decode([]byte(result))
	if err != nil {
		t.Fatal(err)
	}
	return v
}
