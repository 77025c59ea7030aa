package monitor

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/oci/ctr"
)

// The protocol on <dir>/monitor.sock: one request per connection, a JSON object on one line, answered by
// one JSON line. An attach request then turns the connection into a stream of frames, each a type byte,
// a big-endian uint32 length and that many bytes of payload.

// Files of the pod directory the monitor owns.
const (
	SocketName   = "monitor.sock"
	PidFileName  = "monitor.pid"
	LogFileName  = "monitor.log"
	PauseDirName = "pause"     // empty chroot of the pause process
	PausePidName = "pause.pid" // pid of the pause process, when there is one
	ExitFileName = "exit.json" // in a container's bundle, once it exited
)

const (
	opHello     = "hello"
	opCreate    = "create"
	opStart     = "start"
	opSignal    = "signal"
	opState     = "state"
	opRemove    = "remove"
	opReopenLog = "reopen-log"
	opAttach    = "attach"
	opShutdown  = "shutdown"
)

type request struct {
	Op     string         `json:"op"`
	ID     string         `json:"id,omitempty"`
	Create *CreateRequest `json:"create,omitempty"`
	Signal int            `json:"signal,omitempty"`
	Attach *attachOpts    `json:"attach,omitempty"`
}

type response struct {
	Error      string           `json:"error,omitempty"`
	Kind       string           `json:"kind,omitempty"`
	Hello      *hello           `json:"hello,omitempty"`
	Containers []ContainerState `json:"containers,omitempty"`
}

type hello struct {
	Pid      int `json:"pid"`
	PausePid int `json:"pause_pid,omitempty"`
	// Start and PauseStart are the processes' start times (ctr.ProcessStart); 0 from older monitors.
	Start      uint64 `json:"start,omitempty"`
	PauseStart uint64 `json:"pause_start,omitempty"`
}

type attachOpts struct {
	Stdin  bool `json:"stdin,omitempty"`
	Stdout bool `json:"stdout,omitempty"`
	Stderr bool `json:"stderr,omitempty"`
}

// CreateRequest asks the monitor to create a container from a bundle directory holding config.json and
// the mounted rootfs.
type CreateRequest struct {
	ID      string `json:"id"`
	Bundle  string `json:"bundle"`
	LogPath string `json:"log_path,omitempty"` // CRI log file; empty discards the output
	// LogDir is the pod's log_directory, which LogPath lies beneath: the file is opened with no symlink below it.
	// Empty (an older berthd): LogPath's parent.
	LogDir    string `json:"log_dir,omitempty"`
	Stdin     bool   `json:"stdin,omitempty"`
	StdinOnce bool   `json:"stdin_once,omitempty"` // stdin closes when the first attacher with stdin detaches
	TTY       bool   `json:"tty,omitempty"`        // must match the spec's process.terminal
}

// Status of a container in its monitor.
type Status string

const (
	StatusCreated Status = "created"
	StatusRunning Status = "running"
	StatusExited  Status = "exited"
)

// ContainerState is what the monitor knows of one container.
type ContainerState struct {
	ID         string    `json:"id"`
	Status     Status    `json:"status"`
	Pid        int       `json:"pid,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	Exit       *Exit     `json:"exit,omitempty"`
	LogDropped uint64    `json:"log_dropped,omitempty"` // log lines lost because the file could not be written
}

// Exit is how a container's process ended; the monitor writes it to <bundle>/exit.json.
type Exit struct {
	ExitCode   int       `json:"exit_code"`
	Signal     string    `json:"signal,omitempty"` // e.g. "SIGKILL" when killed by a signal
	OOMKilled  bool      `json:"oom_killed"`       // the kernel OOM-killed a process of the container
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at"`
}

// Size is a terminal size.
type Size = ctr.TerminalSize

func errResponse(err error) response {
	return response{Error: err.Error(), Kind: errdefs.Kind(err)}
}

// responseErr rebuilds the monitor's error so that errors.Is sees its sentinel.
func responseErr(op string, r *response) error {
	if r.Error == "" {
		return nil
	}
	return errdefs.FromKind("monitor "+op+": "+r.Error, r.Kind)
}

// maxLine bounds a request or response line.
const maxLine = 1 << 20

func writeLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func readLine(r *bufio.Reader, v any) error {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxLine {
			return fmt.Errorf("line longer than %d bytes", maxLine)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return err
		}
		return json.Unmarshal(line, v)
	}
}

// Frame types of an attach stream.
const (
	frameStdin      byte = iota // client → monitor: bytes for the container's stdin
	frameStdout                 // monitor → client
	frameStderr                 // monitor → client
	frameResize                 // client → monitor: width and height, big-endian uint16s
	frameStdinClose             // client → monitor: the client's stdin ended
	frameExit                   // monitor → client: the container exited; big-endian int32 exit code
)

// maxFrame bounds a frame's payload.
const maxFrame = 32 * 1024

func writeFrame(w io.Writer, typ byte, p []byte) error {
	if len(p) > maxFrame {
		return fmt.Errorf("frame of %d bytes", len(p))
	}
	b := make([]byte, 5+len(p))
	b[0] = typ
	binary.BigEndian.PutUint32(b[1:5], uint32(len(p)))
	copy(b[5:], p)
	_, err := w.Write(b)
	return err
}

// readFrame reads one frame into buf (at least maxFrame bytes) and returns its payload.
func readFrame(r io.Reader, buf []byte) (byte, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("frame of %d bytes", n)
	}
	p := buf[:n]
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	return h[0], p, nil
}
