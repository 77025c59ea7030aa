package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// versionCall is a CRI Version call's gRPC request line.
const versionCall = "/runtime.v1.RuntimeService/Version"

// selfCheck makes one CRI Version call over berthd's own socket, through the gRPC server, its interceptor and the
// runtime service, as the kubelet's calls go. It speaks the few HTTP/2 frames of one unary call itself: gRPC's
// client (grpc.NewClient and its resolvers, balancers and client transport) would add ~760 KB to berthd, and every
// linked page of berthd is resident; the HTTP/2 framer and HPACK are linked already, by the gRPC server.
func selfCheck(ctx context.Context, socket string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return fmt.Errorf("self-check: %w", err)
	}
	defer conn.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	conn.SetDeadline(deadline)
	if err := writeVersionCall(conn); err != nil {
		return fmt.Errorf("self-check: %w", err)
	}
	if err := readGRPCStatus(http2.NewFramer(nil, conn)); err != nil {
		return fmt.Errorf("self-check %s: %w", versionCall, err)
	}
	return nil
}

// writeVersionCall writes the client preface, our settings, and stream 1: the request headers and one gRPC message,
// an empty VersionRequest (a 5-byte frame: not compressed, length 0).
func writeVersionCall(conn net.Conn) error {
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		return err
	}
	fr := http2.NewFramer(conn, nil)
	if err := fr.WriteSettings(); err != nil {
		return err
	}
	var hdr bytes.Buffer
	enc := hpack.NewEncoder(&hdr)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", versionCall},
		{":authority", "localhost"}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
		if err := enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			return err
		}
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hdr.Bytes(), EndHeaders: true}); err != nil {
		return err
	}
	return fr.WriteData(1, true, make([]byte, 5))
}

// readGRPCStatus reads frames until stream 1 ends and returns nil when its grpc-status is 0 (OK). The server's
// SETTINGS need no acknowledgement for one call; headers come in single frames (no CONTINUATION) from grpc-go.
func readGRPCStatus(fr *http2.Framer) error {
	dec := hpack.NewDecoder(4096, nil)
	grpcStatus, message := "", ""
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return err
		}
		switch f := f.(type) {
		case *http2.GoAwayFrame:
			return fmt.Errorf("server sent GOAWAY (%v)", f.ErrCode)
		case *http2.RSTStreamFrame:
			return fmt.Errorf("server reset the call (%v)", f.ErrCode)
		case *http2.HeadersFrame:
			fields, err := dec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				return err
			}
			for _, h := range fields {
				switch h.Name {
				case "grpc-status":
					grpcStatus = h.Value
				case "grpc-message":
					message = h.Value
				}
			}
			if !f.StreamEnded() {
				continue
			}
			switch grpcStatus {
			case "0":
				return nil
			case "":
				return errors.New("the call ended without a grpc-status")
			default:
				return fmt.Errorf("grpc-status %s: %s", grpcStatus, message)
			}
		}
	}
}
