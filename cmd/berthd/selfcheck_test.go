package main

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

type versionOnly struct {
	runtimeapi.UnimplementedRuntimeServiceServer
}

func (versionOnly) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{RuntimeName: "berth"}, nil
}

// serveGRPC serves rt on a unix socket for the test and returns the socket's path.
func serveGRPC(t *testing.T, rt runtimeapi.RuntimeServiceServer) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "cri.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(srv, rt)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return sock
}

func TestSelfCheck(t *testing.T) {
	silent := filepath.Join(t.TempDir(), "silent.sock")
	lis, err := net.Listen("unix", silent) // accepts (the kernel's backlog), never answers
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	cases := map[string]struct {
		socket string
		err    string
	}{
		"answers":         {socket: serveGRPC(t, versionOnly{})},
		"unimplemented":   {socket: serveGRPC(t, runtimeapi.UnimplementedRuntimeServiceServer{}), err: "grpc-status 12"},
		"no server":       {socket: filepath.Join(t.TempDir(), "none.sock"), err: "no such file"},
		"does not answer": {socket: silent, err: "timeout"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			err := selfCheck(ctx, tc.socket)
			if tc.err == "" && err != nil {
				t.Fatal(err)
			}
			if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("err = %v, want one with %q", err, tc.err)
			}
		})
	}
}
