// Package crilog writes container output in the CRI log format the kubelet reads:
//
//	<RFC3339Nano timestamp> <stdout|stderr> <P|F> <text>\n
//
// F ends a line of the container's output, P is a piece of a longer line: lines longer than MaxLineSize
// are cut into P pieces, and output left without a final newline when the stream ends is written as P,
// so that joining the pieces (F adding back its newline) gives exactly the bytes the container wrote.
// This is what the kubelet's parser expects and what containerd does.
//
// Writing never fails and never blocks on anything but the file: when the file cannot be written the
// lines are counted as dropped, so a container is never stalled on its stdout.
package crilog

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// MaxLineSize is the longest text of one log line, as in containerd's max_container_log_line_size.
const MaxLineSize = 16 * 1024

// Stream names the output stream in a log line.
type Stream string

const (
	Stdout Stream = "stdout"
	Stderr Stream = "stderr"
)

const (
	tagPartial = 'P'
	tagFull    = 'F'
	// flushSize bounds the bytes formatted before they are written.
	flushSize = 32 * 1024
	// keepSize bounds the buffers a Writer keeps between writes: every container's monitor holds two
	// Writers for the container's life, and most containers write little.
	keepSize = 4096
)

// File is one container's log file, shared by the Writers of its streams.
type File struct {
	dir, name string // the file is name, resolved beneath dir
	dropped   atomic.Uint64
	now       func() time.Time

	mu     sync.Mutex
	f      *os.File // nil once closed
	closed bool
}

// Open opens (creating it if needed) the log file name, a relative path beneath the directory dir (the pod's
// log_directory), for appending. No component below dir may be a symlink or ".." (openat2 RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS): the root monitor must never append a container's output to a host file someone linked
// there. The file must be a regular file (a FIFO neither hangs the open nor is used). dir "" takes name's parent
// as the directory (a request from an older berthd that sent only the path).
func Open(dir, name string) (*File, error) {
	if dir == "" {
		dir, name = filepath.Dir(name), filepath.Base(name)
	}
	f := &File{dir: dir, name: name, now: time.Now}
	nf, err := f.open()
	if err != nil {
		return nil, err
	}
	f.f = nf
	return f, nil
}

func (f *File) open() (*os.File, error) {
	nf, err := openBeneath(f.dir, f.name)
	if err != nil {
		return nil, fmt.Errorf("open container log %s: %w", f.Path(), err)
	}
	return nf, nil
}

// ErrUnsafePath is wrapped by Open's error for a log path that is not a regular file inside the directory: a
// symlink, ".." or an absolute path on the way, a FIFO, a device.
var ErrUnsafePath = errors.New("not a regular file inside the log directory")

func openBeneath(dir, name string) (*os.File, error) {
	if filepath.IsAbs(name) || !filepath.IsLocal(name) {
		return nil, fmt.Errorf("%q: %w", name, ErrUnsafePath)
	}
	dfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(dfd)
	// O_NONBLOCK: opening a FIFO for writing must not wait for a reader.
	flags := unix.O_WRONLY | unix.O_CREAT | unix.O_APPEND | unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY
	fd, err := unix.Openat2(dfd, name, &unix.OpenHow{Flags: uint64(flags), Mode: 0o640,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS})
	if err != nil {
		switch err {
		case unix.ELOOP, unix.EXDEV: // a symlink, "..", an absolute path on the way
			err = fmt.Errorf("%w (a symlink or an escape on the way: %v)", ErrUnsafePath, err)
		case unix.ENXIO, unix.EISDIR: // a FIFO nobody reads, a device without a driver, a directory
			err = fmt.Errorf("%w (%v)", ErrUnsafePath, err)
		}
		return nil, &fs.PathError{Op: "open", Path: filepath.Join(dir, name), Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "open", Path: filepath.Join(dir, name), Err: ErrUnsafePath}
	}
	// Writes to a regular file ignore O_NONBLOCK; clear it anyway so the file behaves as any other.
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), filepath.Join(dir, name)), nil
}

// Path is the file's path.
func (f *File) Path() string { return filepath.Join(f.dir, f.name) }

// Reopen opens the path again, after the kubelet renamed the file to rotate it. On error the old file
// stays in use.
func (f *File) Reopen() error {
	nf, err := f.open()
	if err != nil {
		return err
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		nf.Close()
		return fmt.Errorf("reopen container log %s: closed", f.Path())
	}
	old := f.f
	f.f = nf
	f.mu.Unlock()
	old.Close()
	return nil
}

// Close closes the file; lines written afterwards are dropped.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	err := f.f.Close()
	f.f = nil
	return err
}

// Dropped counts the lines that could not be written.
func (f *File) Dropped() uint64 { return f.dropped.Load() }

// write appends formatted lines in one write, so lines of several streams never interleave.
func (f *File) write(b []byte, lines int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.f == nil {
		f.dropped.Add(uint64(lines))
		return
	}
	if _, err := f.f.Write(b); err != nil {
		f.dropped.Add(uint64(lines))
	}
}

// NewWriter returns the writer of one stream. A Writer is not safe for concurrent use: each stream has
// one, fed by the goroutine that drains the container's pipe.
func (f *File) NewWriter(s Stream) *Writer {
	return &Writer{file: f, stream: s}
}

// Writer turns one stream's bytes into log lines.
type Writer struct {
	file    *File
	stream  Stream
	pending []byte // a line begun but not yet ended, at most MaxLineSize bytes
	out     []byte // formatted lines not yet written
	lines   int    // lines in out
	ts      []byte // timestamp of the current Write
}

// Write logs every complete line of p and keeps the rest for the next call. It always consumes all of p.
func (w *Writer) Write(p []byte) (int, error) {
	n := len(p)
	w.ts = w.file.now().UTC().AppendFormat(w.ts[:0], time.RFC3339Nano)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if len(w.pending)+len(p) <= MaxLineSize {
				w.pending = append(w.pending, p...)
				break
			}
			p = w.cut(p)
			continue
		}
		if len(w.pending)+i > MaxLineSize {
			p = w.cut(p)
			continue
		}
		if len(w.pending) == 0 {
			w.line(tagFull, p[:i])
		} else {
			w.pending = append(w.pending, p[:i]...)
			w.line(tagFull, w.pending)
			w.pending = w.pending[:0]
		}
		p = p[i+1:]
	}
	w.flush()
	w.release()
	return n, nil
}

// cut fills the pending line up to MaxLineSize from p, logs it as a piece and returns the rest of p.
func (w *Writer) cut(p []byte) []byte {
	room := MaxLineSize - len(w.pending)
	w.pending = append(w.pending, p[:room]...)
	w.line(tagPartial, w.pending)
	w.pending = w.pending[:0]
	return p[room:]
}

// Close logs what is left of an unterminated line as a piece. The File stays open.
func (w *Writer) Close() error {
	if len(w.pending) > 0 {
		w.ts = w.file.now().UTC().AppendFormat(w.ts[:0], time.RFC3339Nano)
		w.line(tagPartial, w.pending)
		w.pending = nil
	}
	w.flush()
	return nil
}

func (w *Writer) line(tag byte, text []byte) {
	w.out = append(w.out, w.ts...)
	w.out = append(w.out, ' ')
	w.out = append(w.out, w.stream...)
	w.out = append(w.out, ' ', tag, ' ')
	w.out = append(w.out, text...)
	w.out = append(w.out, '\n')
	w.lines++
	if len(w.out) >= flushSize {
		w.flush()
	}
}

func (w *Writer) flush() {
	if w.lines > 0 {
		w.file.write(w.out, w.lines)
	}
	w.lines = 0
	w.out = w.out[:0]
}

// release drops large buffers at the end of a Write: an idle container keeps none.
func (w *Writer) release() {
	if cap(w.out) > keepSize {
		w.out = nil
	}
	if len(w.pending) == 0 && cap(w.pending) > keepSize {
		w.pending = nil
	}
}
