package cri

import (
	"bytes"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// kubeletMaxMsgSize is the kubelet's gRPC receive limit for CRI calls (k8s.io/cri-client).
const kubeletMaxMsgSize = 16 << 20

// TestExecSyncOutputCap: a command writing far more than 16 MiB to stdout and stderr together gets a response the
// kubelet can receive, with both streams kept in order up to the cap and marked as truncated; writes never fail,
// so the command runs to its end.
func TestExecSyncOutputCap(t *testing.T) {
	for name, tc := range map[string]struct {
		out, err  int  // bytes written to each
		truncated bool // the whole is over the cap
	}{
		"small":             {out: 100, err: 10, truncated: false},
		"stdout only flood": {out: 40 << 20, err: 0, truncated: true},
		"both 12 MiB":       {out: 12 << 20, err: 12 << 20, truncated: true},
		"both 9 MiB":        {out: 9 << 20, err: 9 << 20, truncated: true},
	} {
		t.Run(name, func(t *testing.T) {
			stdout, stderr := execOutputs()
			var wg sync.WaitGroup
			for _, s := range []struct {
				w    interface{ Write([]byte) (int, error) }
				n    int
				fill byte
			}{{stdout, tc.out, 'o'}, {stderr, tc.err, 'e'}} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					chunk := bytes.Repeat([]byte{s.fill}, 32<<10)
					for left := s.n; left > 0; left -= len(chunk) {
						p := chunk[:min(len(chunk), left)]
						if n, err := s.w.Write(p); n != len(p) || err != nil {
							t.Errorf("Write = %d, %v: the command would see its output fail", n, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			resp := &runtimeapi.ExecSyncResponse{Stdout: stdout.output(), Stderr: stderr.output(), ExitCode: 1}
			if size := proto.Size(resp); size > kubeletMaxMsgSize {
				t.Fatalf("response is %d bytes, over the kubelet's %d", size, kubeletMaxMsgSize)
			}
			got := string(resp.Stdout) + string(resp.Stderr)
			if marked := strings.Contains(got, "truncated"); marked != tc.truncated {
				t.Errorf("truncation marked: %v, want %v", marked, tc.truncated)
			}
			if !tc.truncated && (len(resp.Stdout) != tc.out || len(resp.Stderr) != tc.err) {
				t.Errorf("kept %d+%d bytes, want %d+%d", len(resp.Stdout), len(resp.Stderr), tc.out, tc.err)
			}
			if tc.out > 0 && strings.Trim(strings.SplitN(string(resp.Stdout), "\n[berth", 2)[0], "o") != "" {
				t.Error("stdout holds bytes the command did not write")
			}
		})
	}
}
