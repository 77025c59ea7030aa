package sandbox

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/opencontainers/cgroups"
)

func TestParseNetDev(t *testing.T) {
	const header = "Inter-|   Receive                                                |  Transmit\n" +
		" face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n"
	for name, tc := range map[string]struct {
		in      string
		want    []InterfaceStats
		wantErr bool
	}{
		"empty": {in: header},
		"two interfaces": {
			in: header +
				"    lo:     120       2    0    0    0     0          0         0      120       2    0    0    0     0       0          0\n" +
				"  eth0: 9000 70 1 2 0 0 0 0 800 6 3 4 0 0 0 0\n",
			want: []InterfaceStats{
				{Name: "lo", RxBytes: 120, RxPackets: 2, TxBytes: 120, TxPackets: 2},
				{Name: "eth0", RxBytes: 9000, RxPackets: 70, RxErrors: 1, RxDropped: 2, TxBytes: 800, TxPackets: 6, TxErrors: 3, TxDropped: 4},
			},
		},
		"too few counters": {in: header + "eth0: 1 2 3\n", wantErr: true},
		"not a number":     {in: header + "eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 x\n", wantErr: true},
		"no colon":         {in: header + "eth0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n", wantErr: true},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := parseNetDev(strings.NewReader(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestPodStats(t *testing.T) {
	e := newEnv(t)
	m := e.manager(t)
	p, err := m.Create(context.Background(), fullConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Remove(context.Background(), p) })

	ifs, err := p.NetworkStats()
	if err != nil {
		t.Fatal(err)
	}
	// A fresh namespace has only loopback: the host's interfaces must not show through.
	if len(ifs) != 1 || ifs[0].Name != "lo" {
		t.Errorf("interfaces in the pod namespace = %+v, want only lo", ifs)
	}

	cg, err := p.Cgroup()
	if err != nil {
		t.Fatal(err)
	}
	st, err := cg.Stats(&cgroups.StatsOptions{Controllers: cgroups.Pids})
	if err != nil {
		t.Fatal(err)
	}
	if st.PidsStats.Current == 0 {
		t.Error("pod cgroup holds no task; the fake monitor should be in it")
	}
}
