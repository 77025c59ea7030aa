// Command nginx stands in for the nginx of the e2e test images: it answers 200 on GET /, listens
// on $NGINX_LISTEN (default :80) and writes /var/run/nginx.pid. It re-executes itself so that, like
// real nginx, its command name is "nginx" and its argv[0] reads "nginx: master process ...",
// which critest's HostPID, ContainerPID and PodPID specs look for.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

const (
	title   = "nginx: master process nginx -g daemon off;"
	pidFile = "/var/run/nginx.pid"
)

func main() {
	if os.Args[0] != title {
		// The kernel sets comm from the executed file's name and keeps the pid across exec.
		exe, err := os.Executable()
		if err != nil {
			log.Fatalf("nginx: %v", err)
		}
		log.Fatalf("nginx: re-exec %s: %v", exe, syscall.Exec(exe, []string{title}, os.Environ()))
	}
	addr := os.Getenv("NGINX_LISTEN")
	if addr == "" {
		addr = ":80"
	}
	if err := serve(addr); err != nil {
		log.Fatalf("nginx: %v", err)
	}
}

func serve(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	defer os.Remove(pidFile)

	srv := &http.Server{Handler: http.HandlerFunc(handle), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT)
	select {
	case err := <-errc:
		return err
	case sig := <-sigs:
		if sig != syscall.SIGQUIT { // like nginx: TERM/INT fast shutdown, QUIT graceful
			return nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func handle(w http.ResponseWriter, r *http.Request) {
	status := http.StatusOK
	if r.URL.Path != "/" {
		status = http.StatusNotFound
	}
	log.Printf("%s %q %d", r.RemoteAddr, r.Method+" "+r.URL.RequestURI(), status)
	w.WriteHeader(status)
	if status == http.StatusOK {
		fmt.Fprintln(w, "<html><body><h1>Welcome to nginx!</h1></body></html>")
	}
}
