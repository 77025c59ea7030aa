package cni

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/sandbox"
)

func TestRuntimeConfCapabilities(t *testing.T) {
	cases := map[string]struct {
		pod     pod
		want    string // the capability args as JSON
		wantErr string
	}{
		"none": {want: `{}`},
		"port mappings": {
			pod: pod{PortMappings: []sandbox.PortMapping{
				{Protocol: "TCP", ContainerPort: 80, HostPort: 8080},
				{Protocol: "UDP", ContainerPort: 53, HostPort: 5353, HostIP: "127.0.0.1"},
				{Protocol: "SCTP", ContainerPort: 9, HostPort: 9},
				{Protocol: "TCP", ContainerPort: 443}, // no host port: nothing to publish
			}},
			want: `{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"},` +
				`{"hostPort":5353,"containerPort":53,"protocol":"udp","hostIP":"127.0.0.1"},` +
				`{"hostPort":9,"containerPort":9,"protocol":"sctp"}]}`,
		},
		"only container ports": {pod: pod{PortMappings: []sandbox.PortMapping{{Protocol: "TCP", ContainerPort: 80}}}, want: `{}`},
		"dns": {
			pod:  pod{DNS: sandbox.DNSConfig{Servers: []string{"10.0.0.10"}, Searches: []string{"svc.local"}, Options: []string{"ndots:5"}}},
			want: `{"dns":{"servers":["10.0.0.10"],"searches":["svc.local"],"options":["ndots:5"]}}`,
		},
		"bandwidth both": {
			pod:  pod{Annotations: map[string]string{ingressBandwidthAnnotation: "10M", egressBandwidthAnnotation: "1Mi", "other": "x"}},
			want: `{"bandwidth":{"ingressRate":10000000,"ingressBurst":4294967295,"egressRate":1048576,"egressBurst":4294967295}}`,
		},
		"bandwidth egress only": {
			pod:  pod{Annotations: map[string]string{egressBandwidthAnnotation: "1.5k"}},
			want: `{"bandwidth":{"egressRate":1500,"egressBurst":4294967295}}`,
		},
		"bandwidth too small": {pod: pod{Annotations: map[string]string{ingressBandwidthAnnotation: "999"}},
			wantErr: "annotations[kubernetes.io/ingress-bandwidth]: \"999\" is outside 1k to 1P"},
		"bandwidth too large": {pod: pod{Annotations: map[string]string{egressBandwidthAnnotation: "2P"}},
			wantErr: "outside 1k to 1P"},
		"bandwidth garbage": {pod: pod{Annotations: map[string]string{egressBandwidthAnnotation: "fast"}},
			wantErr: "annotations[kubernetes.io/egress-bandwidth]: \"fast\": not a quantity"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rt, err := runtimeConf(tc.pod)
			if tc.wantErr != "" {
				if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want invalid argument %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.Marshal(rt.CapabilityArgs)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("capability args =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestRuntimeConfArgs(t *testing.T) {
	rt, err := runtimeConf(pod{ID: "abc", Name: "web", Namespace: "ns", UID: "u1", NetNS: "/run/berth/pods/abc/ns/net"})
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "ns"}, {"K8S_POD_NAME", "web"},
		{"K8S_POD_INFRA_CONTAINER_ID", "abc"}, {"K8S_POD_UID", "u1"}}
	if rt.ContainerID != "abc" || rt.NetNS != "/run/berth/pods/abc/ns/net" || rt.IfName != "eth0" || len(rt.Args) != len(want) {
		t.Fatalf("runtime conf = %+v", rt)
	}
	for i := range want {
		if rt.Args[i] != want[i] {
			t.Errorf("args[%d] = %q, want %q", i, rt.Args[i], want[i])
		}
	}
}

func TestParseQuantity(t *testing.T) {
	cases := map[string]struct {
		in      string
		want    uint64
		wantErr bool
	}{
		"plain":          {in: "1000", want: 1000},
		"decimal suffix": {in: "10M", want: 10_000_000},
		"binary suffix":  {in: "1Gi", want: 1 << 30},
		"fraction":       {in: "1.5k", want: 1500},
		"rounds up":      {in: "1.0001k", want: 1001},
		"leading dot":    {in: ".5M", want: 500_000},
		"exponent":       {in: "1e6", want: 1_000_000},
		"exponent frac":  {in: "2.5E3", want: 2500},
		"peta":           {in: "1P", want: 1e15},
		"empty":          {in: "", wantErr: true},
		"negative":       {in: "-1M", wantErr: true},
		"milli":          {in: "100m", wantErr: true},
		"unit":           {in: "10Mbit", wantErr: true},
		"space":          {in: "10 M", wantErr: true},
		"overflow":       {in: "100000000E", wantErr: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := parseQuantity(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("parseQuantity(%q) = %d, want an error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseQuantity(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
		})
	}
}
