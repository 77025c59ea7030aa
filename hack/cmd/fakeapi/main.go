// Command fakeapi is the little of a Kubernetes API server that berth-installer's switch mode talks to, for node VMs
// that have no cluster (hack/vm/guest/systemd.sh): one node, cordoned and drained (no pods bound to it), whose
// labels take strategic merge patches. It serves HTTPS on a loopback port with httptest's certificate and writes,
// into -dir, ca.crt and addr (host:port) once it listens, and labels.json after every patch. It stops on SIGTERM.
package main

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"flag"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

type api struct {
	node, dir string
	mu        sync.Mutex
	labels    map[string]string
}

func main() {
	node := flag.String("node", "", "the node's name (required)")
	dir := flag.String("dir", "", "where ca.crt, addr and labels.json go (required)")
	flag.Parse()
	if *node == "" || *dir == "" {
		log.Fatal("fakeapi: -node and -dir are required")
	}
	a := &api{node: *node, dir: *dir, labels: map[string]string{}}
	srv := httptest.NewUnstartedServer(a)
	srv.StartTLS()
	defer srv.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(filepath.Join(*dir, "ca.crt"), ca, 0o644); err != nil {
		log.Fatal(err)
	}
	a.writeLabels()
	// addr last: its presence says the server is up.
	if err := os.WriteFile(filepath.Join(*dir, "addr"), []byte(strings.TrimPrefix(srv.URL, "https://")+"\n"), 0o644); err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
}

func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	log.Printf("fakeapi: %s %s", r.Method, r.URL.RequestURI())
	nodePath := "/api/v1/nodes/" + a.node
	switch {
	case r.Method == http.MethodGet && r.URL.Path == nodePath:
		json.NewEncoder(w).Encode(map[string]any{
			"metadata": map[string]any{"name": a.node, "labels": a.labels},
			"spec":     map[string]any{"unschedulable": true},
		})
	case r.Method == http.MethodGet && r.URL.Path == "/api/v1/pods":
		io.WriteString(w, `{"metadata":{},"items":[]}`)
	case r.Method == http.MethodPatch && r.URL.Path == nodePath:
		var patch struct {
			Metadata struct {
				Labels map[string]*string `json:"labels"`
			} `json:"metadata"`
		}
		if err := json.NewDecoder(r.Body).Decode(&patch); err != nil {
			http.Error(w, `{"message":"bad patch"}`, http.StatusBadRequest)
			return
		}
		for k, v := range patch.Metadata.Labels {
			if v == nil {
				delete(a.labels, k)
			} else {
				a.labels[k] = *v
			}
		}
		a.writeLabels()
		io.WriteString(w, `{}`)
	default:
		http.Error(w, `{"message":"not found"}`, http.StatusNotFound)
	}
}

func (a *api) writeLabels() {
	data, _ := json.Marshal(a.labels)
	if err := os.WriteFile(filepath.Join(a.dir, "labels.json"), append(data, '\n'), 0o644); err != nil {
		log.Printf("fakeapi: %v", err)
	}
}
