//go:build integration

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/websocket"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"
)

const busyboxImage = "registry.k8s.io/e2e-test-images/busybox:1.29-2"

// TestStreamingExec runs 20 execs at once through the streaming server, over SPDY and WebSocket, then an exec
// whose client goes away, and checks that berthd is left with the processes and goroutines it had before.
func TestStreamingExec(t *testing.T) {
	needImages(t)
	metrics := freePort(t)
	d := newDaemon(t, fmt.Sprintf("[metrics]\naddress = %q\npprof = true\n", metrics))
	d.start(t)
	rt, img := d.clients(t)
	ctr := runSleeper(t, rt, img, d.dir)

	exec := func(r *runtimeapi.ExecRequest) (string, error) {
		r.ContainerId = ctr
		resp, err := rt.Exec(ctx(t), r)
		return resp.GetUrl(), err
	}
	// A first exec starts what berthd starts once (the streaming server's lazily made parts).
	url, err := exec(&runtimeapi.ExecRequest{Cmd: []string{"true"}, Stdout: true})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := spdyExec(ctx(t), url, clientStreams{stdout: true}); err != nil || res.code != 0 {
		t.Fatalf("warm-up exec: %+v, %v", res, err)
	}
	children := berthdChildren(d)
	goroutines := goroutineCount(t, metrics)

	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			code := i % 4
			var want, got result
			var url string
			var err error
			switch {
			case i%5 == 4: // a terminal, resized
				url, err = exec(&runtimeapi.ExecRequest{Cmd: []string{"sh", "-c", "sleep 1; stty size"}, Stdout: true, Stdin: true, Tty: true})
				if err == nil {
					got, err = spdyExec(ctx(t), url, clientStreams{stdin: strings.NewReader(""), stdout: true, tty: true, width: 123, height: 45})
				}
				want = result{stdout: "45 123\r\n"}
			case i%2 == 0: // SPDY, with stdin
				cmd := []string{"sh", "-c", fmt.Sprintf("cat; echo err-%d >&2; exit %d", i, code)}
				url, err = exec(&runtimeapi.ExecRequest{Cmd: cmd, Stdin: true, Stdout: true, Stderr: true})
				if err == nil {
					got, err = spdyExec(ctx(t), url, clientStreams{stdin: strings.NewReader(fmt.Sprintf("in-%d\n", i)), stdout: true, stderr: true})
				}
				want = result{stdout: fmt.Sprintf("in-%d\n", i), stderr: fmt.Sprintf("err-%d\n", i), code: code}
			default: // WebSocket (v4 channel protocol: no stdin close, so no stdin)
				cmd := []string{"sh", "-c", fmt.Sprintf("echo out-%d; echo err-%d >&2; exit %d", i, i, code)}
				url, err = exec(&runtimeapi.ExecRequest{Cmd: cmd, Stdout: true, Stderr: true})
				if err == nil {
					got, err = wsExec(ctx(t), url)
				}
				want = result{stdout: fmt.Sprintf("out-%d\n", i), stderr: fmt.Sprintf("err-%d\n", i), code: code}
			}
			if err != nil || got != want {
				t.Errorf("exec %d: got %+v, %v; want %+v", i, got, err, want)
			}
		})
	}
	wg.Wait()

	// A client that goes away: its process is killed.
	url, err = exec(&runtimeapi.ExecRequest{Cmd: []string{"sh", "-c", "echo started; exec sleep 1000"}, Stdout: true})
	if err != nil {
		t.Fatal(err)
	}
	conn, streams, err := spdyConnect(ctx(t), url, clientStreams{stdout: true})
	if err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(streams["stdout"]).ReadString('\n'); line != "started\n" {
		t.Fatalf("abandoned exec: read %q, %v", line, err)
	}
	if len(berthdChildren(d)) <= len(children) {
		t.Error("the abandoned exec's process is not running")
	}
	conn.Close()

	eventually(t, "berthd's children as before the execs", func() string {
		if now := berthdChildren(d); !slices.Equal(now, children) {
			return fmt.Sprintf("children %v, before %v", now, children)
		}
		return ""
	})
	eventually(t, "no goroutine left", func() string {
		if n := goroutineCount(t, metrics); n > goroutines {
			return fmt.Sprintf("%d goroutines, %d before", n, goroutines)
		}
		return ""
	})
	if dirs := execCgroups(t, ctr); len(dirs) > 0 {
		t.Errorf("exec cgroups left: %v", dirs)
	}
}

// runSleeper runs a host-network pod (no CNI needed) with one container sleeping, and returns its id.
func runSleeper(t *testing.T, rt runtimeapi.RuntimeServiceClient, img runtimeapi.ImageServiceClient, dir string) string {
	t.Helper()
	if _, err := img.PullImage(ctx(t), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: busyboxImage}}); err != nil {
		t.Fatal(err)
	}
	podCfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "streaming", Namespace: "test", Uid: "streaming-uid"},
		LogDirectory: filepath.Join(dir, "logs"),
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE}}},
	}
	pod := runTestPod(t, rt, podCfg)
	c, err := rt.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: podCfg,
		Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "sleeper"},
			Image: &runtimeapi.ImageSpec{Image: busyboxImage}, Command: []string{"sleep", "3600"}, LogPath: "sleeper.log"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.StartContainer(ctx(t), &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
		t.Fatal(err)
	}
	return c.ContainerId
}

type result struct {
	stdout, stderr string
	code           int
}

// clientStreams are the streams a client opens, as its ExecRequest announced them.
type clientStreams struct {
	stdin          io.Reader // nil: none
	stdout, stderr bool
	tty            bool
	width, height  uint16 // sent on the resize stream, with tty
}

// spdyConnect opens an exec session as kubectl does (SPDY, remote command protocol v4). Closing the returned
// net.Conn is a client that goes away.
func spdyConnect(ctx context.Context, rawURL string, c clientStreams) (net.Conn, map[string]httpstream.Stream, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, err
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, nil, err
	}
	conn, err := spdyUpgrade(nc, rawURL)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	streams := map[string]httpstream.Stream{}
	for _, typ := range []string{"error", "stdin", "stdout", "stderr", "resize"} {
		if want := map[string]bool{"error": true, "stdin": c.stdin != nil, "stdout": c.stdout, "stderr": c.stderr, "resize": c.tty}; !want[typ] {
			continue
		}
		h := http.Header{}
		h.Set("streamType", typ)
		if streams[typ], err = conn.CreateStream(h); err != nil {
			nc.Close()
			return nil, nil, fmt.Errorf("create %s stream: %w", typ, err)
		}
	}
	return nc, streams, nil
}

func spdyUpgrade(nc net.Conn, rawURL string) (httpstream.Connection, error) {
	req, err := http.NewRequest(http.MethodPost, rawURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "SPDY/3.1")
	req.Header.Set("X-Stream-Protocol-Version", "v4.channel.k8s.io")
	if err := req.Write(nc); err != nil {
		return nil, err
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("upgrade: %s: %s", resp.Status, body)
	}
	return spdy.NewClientConnection(&bufferedConn{Conn: nc, r: br})
}

// bufferedConn reads through the reader that read the upgrade response.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// spdyExec runs an exec session to its end.
func spdyExec(ctx context.Context, url string, c clientStreams) (result, error) {
	conn, streams, err := spdyConnect(ctx, url, c)
	if err != nil {
		return result{}, err
	}
	defer conn.Close()
	if in := streams["stdin"]; in != nil {
		go func() {
			io.Copy(in, c.stdin)
			in.Close()
		}()
	}
	if rs := streams["resize"]; rs != nil {
		json.NewEncoder(rs).Encode(map[string]uint16{"Width": c.width, "Height": c.height})
	}
	var stdout, stderr bytes.Buffer
	var wg sync.WaitGroup
	for typ, buf := range map[string]*bytes.Buffer{"stdout": &stdout, "stderr": &stderr} {
		if s := streams[typ]; s != nil {
			wg.Go(func() { io.Copy(buf, s) })
		}
	}
	status, err := io.ReadAll(streams["error"])
	wg.Wait()
	if err != nil {
		return result{}, fmt.Errorf("read status: %w", err)
	}
	code, err := exitCode(status)
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}, err
}

// wsExec runs an exec session over WebSocket with the v4 channel protocol: each message is a channel number
// (1 stdout, 2 stderr, 3 status) followed by data.
func wsExec(ctx context.Context, url string) (result, error) {
	cfg, err := websocket.NewConfig(strings.Replace(url, "http://", "ws://", 1), "http://127.0.0.1")
	if err != nil {
		return result{}, err
	}
	cfg.Protocol = []string{"v4.channel.k8s.io"}
	ws, err := cfg.DialContext(ctx)
	if err != nil {
		return result{}, err
	}
	defer ws.Close()
	var bufs [4]bytes.Buffer
	for {
		var msg []byte
		if err := websocket.Message.Receive(ws, &msg); err != nil {
			break
		}
		if len(msg) > 0 && int(msg[0]) < len(bufs) {
			bufs[msg[0]].Write(msg[1:])
		}
	}
	code, err := exitCode(bufs[3].Bytes())
	return result{stdout: bufs[1].String(), stderr: bufs[2].String(), code: code}, err
}

// exitCode reads the v4 protocol's status: empty or Success is 0, NonZeroExitCode carries the code.
func exitCode(status []byte) (int, error) {
	if len(status) == 0 {
		return 0, nil
	}
	var st struct {
		Status, Reason string
		Details        struct {
			Causes []struct{ Reason, Message string }
		}
	}
	if err := json.Unmarshal(status, &st); err != nil {
		return -1, fmt.Errorf("status %q: %w", status, err)
	}
	if st.Status == "Success" {
		return 0, nil
	}
	for _, c := range st.Details.Causes {
		if c.Reason == "ExitCode" && st.Reason == "NonZeroExitCode" {
			return strconv.Atoi(c.Message)
		}
	}
	return -1, fmt.Errorf("status %s", status)
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// berthdChildren lists the pids of berthd's children (pod monitors and exec'd processes), sorted.
func berthdChildren(d *daemon) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", d.cmd.Process.Pid))
	var pids []int
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, p := range strings.Fields(string(b)) {
			n, _ := strconv.Atoi(p)
			pids = append(pids, n)
		}
	}
	slices.Sort(pids)
	return pids
}

func goroutineCount(t *testing.T, metrics string) int {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + metrics + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	var n int
	if _, err := fmt.Sscanf(line, "goroutine profile: total %d", &n); err != nil {
		t.Fatalf("goroutine profile %q: %v", line, err)
	}
	return n
}

// execCgroups lists the exec cgroups left under the container's cgroups.
func execCgroups(t *testing.T, ctr string) []string {
	t.Helper()
	var left []string
	filepath.WalkDir("/sys/fs/cgroup", func(path string, e fs.DirEntry, err error) error {
		if err != nil || !e.IsDir() {
			return nil
		}
		if strings.HasPrefix(e.Name(), "berth-exec-") && strings.Contains(path, ctr) {
			left = append(left, path)
		}
		return nil
	})
	return left
}

// eventually polls check (which says what is wrong, or "") for 10 seconds.
func eventually(t *testing.T, what string, check func() string) {
	t.Helper()
	var msg string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if msg = check(); msg == "" {
			return
		}
	}
	t.Errorf("%s: %s", what, msg)
}
