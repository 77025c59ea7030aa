package ctr

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// SocketPair is a console socket: runc init sends a terminal's master side on child; parent receives it
// (RecvFile). parent is non-blocking, so that a read goes through the poller and a Close interrupts it.
func SocketPair(name string) (parent, child *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, os.NewSyscallError("socketpair", err))
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	return os.NewFile(uintptr(fds[0]), name), os.NewFile(uintptr(fds[1]), name), nil
}

// SendFile sends f's descriptor on the unix socket sock.
func SendFile(sock, f *os.File) error {
	rc, err := sock.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		serr = unix.Sendmsg(int(fd), []byte{0}, unix.UnixRights(int(f.Fd())), nil, 0)
	})
	return errors.Join(err, serr)
}

// RecvFile receives one descriptor sent on sock (by SendFile or runc init) and makes it non-blocking; EOF
// without one (every sender closed its end) is an error.
func RecvFile(sock *os.File, name string) (*os.File, error) {
	rc, err := sock.SyscallConn()
	if err != nil {
		return nil, err
	}
	buf, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(4))
	var oobn int
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		_, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_CMSG_CLOEXEC)
		return rerr != unix.EAGAIN
	})
	if err = errors.Join(err, rerr); err != nil {
		return nil, fmt.Errorf("receive %s: %w", name, err)
	}
	if oobn == 0 {
		return nil, fmt.Errorf("receive %s: none was sent", name)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("receive %s: %d control messages (%v)", name, len(msgs), err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("receive %s: %d descriptors (%v)", name, len(fds), err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		return nil, fmt.Errorf("receive %s: %w", name, err)
	}
	return os.NewFile(uintptr(fds[0]), name), nil
}
