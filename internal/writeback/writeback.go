// Package writeback starts the kernel's writeback of a file's pages while the file is still being written.
//
// An image pull syncs the filesystem once at its end (archive.Sync). Left alone, the kernel holds the pages of the
// blobs and layer files dirty until then (with GiBs of memory, nothing reaches the background threshold), so the
// disk idles while the layers arrive and the sync then waits for all of it: half of a 200 MB pull here (issue 16).
// Starting the writeback of each chunk as soon as it is written overlaps the disk with the download; the sync keeps
// the pull's durability and finds little left to do.
package writeback

import "golang.org/x/sys/unix"

// syncFileRange is unix.SyncFileRange; tests record the ranges instead.
var syncFileRange = unix.SyncFileRange

// Chunk is how much of a file is written before its writeback is started; small files, written whole before
// they reach it, are left to the sync (a syscall each would cost more than it saves).
const Chunk = 8 << 20

// Pacer starts the writeback of a file written front to back, one Chunk at a time. The zero value is not usable:
// see New.
type Pacer struct {
	fd             int
	written, begun int64 // bytes written, and up to where writeback was started
}

// New is a Pacer for the file open on fd, at its offset 0.
func New(fd int) *Pacer { return &Pacer{fd: fd} }

// Wrote records n more bytes written at the end and starts the writeback of each whole Chunk not yet begun.
func (p *Pacer) Wrote(n int) {
	p.written += int64(n)
	if p.written-p.begun >= Chunk {
		p.start(p.written)
	}
}

// Done starts the writeback of the rest of a file that grew past one Chunk.
func (p *Pacer) Done() {
	if p.begun > 0 && p.written > p.begun {
		p.start(p.written)
	}
}

func (p *Pacer) start(end int64) {
	// Advisory: an error (a filesystem without writeback, a pipe) only leaves the pages to the final sync.
	_ = syncFileRange(p.fd, p.begun, end-p.begun, unix.SYNC_FILE_RANGE_WRITE)
	p.begun = end
}
