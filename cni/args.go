package cni

import (
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strings"

	"github.com/containernetworking/cni/libcni"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/sandbox"
)

// ifName is the pod's interface, as the kubelet's network plugins expect.
const ifName = "eth0"

// Pod annotations the kubelet sets for the bandwidth plugin: a Kubernetes quantity of bits per second.
const (
	ingressBandwidthAnnotation = "kubernetes.io/ingress-bandwidth"
	egressBandwidthAnnotation  = "kubernetes.io/egress-bandwidth"
)

// pod is what the network needs of a pod; podOf takes it from a sandbox.Pod.
type pod struct {
	ID, Name, Namespace, UID string
	NetNS                    string
	DNS                      sandbox.DNSConfig
	PortMappings             []sandbox.PortMapping
	Annotations              map[string]string
}

func podOf(p *sandbox.Pod) pod {
	c := p.Config()
	return pod{ID: p.ID(), Name: c.Name, Namespace: c.Namespace, UID: c.UID, NetNS: p.NetNSPath(), DNS: c.DNS,
		PortMappings: c.PortMappings, Annotations: c.Annotations}
}

// Capability args, in the JSON the reference plugins read from runtimeConfig (libcni passes each plugin only
// those it declares in its "capabilities").
type portMapping struct {
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

type dns struct {
	Servers  []string `json:"servers,omitempty"`
	Searches []string `json:"searches,omitempty"`
	Options  []string `json:"options,omitempty"`
}

type bandwidth struct {
	IngressRate  uint64 `json:"ingressRate,omitempty"`
	IngressBurst uint64 `json:"ingressBurst,omitempty"`
	EgressRate   uint64 `json:"egressRate,omitempty"`
	EgressBurst  uint64 `json:"egressBurst,omitempty"`
}

// runtimeConf is the ADD of pod p: the kubelet's CNI_ARGS and the capability args of its port mappings, DNS
// and bandwidth annotations.
func runtimeConf(p pod) (*libcni.RuntimeConf, error) {
	caps := map[string]any{}
	if pm := portMappings(p.PortMappings); len(pm) > 0 {
		caps["portMappings"] = pm
	}
	if d := p.DNS; len(d.Servers)+len(d.Searches)+len(d.Options) > 0 {
		caps["dns"] = dns{Servers: d.Servers, Searches: d.Searches, Options: d.Options}
	}
	bw, err := podBandwidth(p.Annotations)
	if err != nil {
		return nil, err
	}
	if bw != nil {
		caps["bandwidth"] = bw
	}
	return &libcni.RuntimeConf{
		ContainerID: p.ID,
		NetNS:       p.NetNS,
		IfName:      ifName,
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", p.Namespace},
			{"K8S_POD_NAME", p.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", p.ID},
			{"K8S_POD_UID", p.UID},
		},
		CapabilityArgs: caps,
	}, nil
}

// portMappings keeps the mappings that publish a host port: a container port alone needs no rule.
func portMappings(in []sandbox.PortMapping) []portMapping {
	var out []portMapping
	for _, m := range in {
		if m.HostPort <= 0 {
			continue
		}
		out = append(out, portMapping{HostPort: m.HostPort, ContainerPort: m.ContainerPort,
			Protocol: strings.ToLower(m.Protocol), HostIP: m.HostIP})
	}
	return out
}

// podBandwidth reads the bandwidth annotations as the kubelet validates them (1k to 1P bits per second), with an
// unlimited burst as containerd passes it; nil when neither is set.
func podBandwidth(annotations map[string]string) (*bandwidth, error) {
	var bw bandwidth
	for key, rate := range map[string]*uint64{ingressBandwidthAnnotation: &bw.IngressRate, egressBandwidthAnnotation: &bw.EgressRate} {
		v, ok := annotations[key]
		if !ok {
			continue
		}
		bits, err := parseQuantity(v)
		if err != nil {
			return nil, errdefs.InvalidArgument("annotations["+key+"]", "%q: %v", v, err)
		}
		if bits < 1000 || bits > 1e15 {
			return nil, errdefs.InvalidArgument("annotations["+key+"]", "%q is outside 1k to 1P bits per second", v)
		}
		*rate = bits
	}
	if bw.IngressRate > 0 {
		bw.IngressBurst = math.MaxUint32
	}
	if bw.EgressRate > 0 {
		bw.EgressBurst = math.MaxUint32
	}
	if bw == (bandwidth{}) {
		return nil, nil
	}
	return &bw, nil
}

var quantityPattern = regexp.MustCompile(`^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$`)

var quantitySuffixes = map[string]*big.Int{
	"": big.NewInt(1), "k": pow(10, 3), "M": pow(10, 6), "G": pow(10, 9), "T": pow(10, 12), "P": pow(10, 15),
	"E": pow(10, 18), "Ki": pow(2, 10), "Mi": pow(2, 20), "Gi": pow(2, 30), "Ti": pow(2, 40), "Pi": pow(2, 50),
	"Ei": pow(2, 60),
}

func pow(base, exp int64) *big.Int { return new(big.Int).Exp(big.NewInt(base), big.NewInt(exp), nil) }

// parseQuantity parses a non-negative Kubernetes quantity ("10M", "1.5Gi", "1e6") and rounds it up to an
// integer, as resource.Quantity.Value does.
func parseQuantity(s string) (uint64, error) {
	m := quantityPattern.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("not a quantity such as 10M or 1Gi")
	}
	num, suffix := m[1], m[2]
	mult, ok := quantitySuffixes[suffix]
	if !ok { // an exponent
		num, mult = num+suffix, quantitySuffixes[""]
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, fmt.Errorf("not a number")
	}
	r.Mul(r, new(big.Rat).SetInt(mult))
	q, rem := new(big.Int).QuoRem(r.Num(), r.Denom(), new(big.Int))
	if rem.Sign() > 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsUint64() {
		return 0, fmt.Errorf("too large")
	}
	return q.Uint64(), nil
}
