package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/berthcri/berth/internal/errdefs"
)

// runtimeLabel marks a node whose kubelet the installer pointed at berth.
const runtimeLabel = "berth.dev/runtime"

const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// kubeClient is the little of the Kubernetes API the installer needs, over plain HTTPS and JSON.
type kubeClient struct {
	base      string // https://host:port
	tokenFile string // read on every request: the kubelet rotates it
	http      *http.Client
}

// inClusterClient talks to the API server as the pod's service account.
func inClusterClient() (*kubeClient, error) {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, errors.New("no Kubernetes API: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset (not in a pod?)")
	}
	ca, err := os.ReadFile(serviceAccountDir + "/ca.crt")
	if err != nil {
		return nil, fmt.Errorf("service account: %w", err)
	}
	return newKubeClient("https://"+net.JoinHostPort(host, port), ca, serviceAccountDir+"/token")
}

func newKubeClient(base string, caPEM []byte, tokenFile string) (*kubeClient, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("service account: no certificate in ca.crt")
	}
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	return &kubeClient{base: base, tokenFile: tokenFile, http: &http.Client{Transport: transport, Timeout: 30 * time.Second}}, nil
}

// apiStatus is the body of an API error.
type apiStatus struct {
	Message string `json:"message"`
}

func (c *kubeClient) do(ctx context.Context, method, path string, query url.Values, contentType string, body []byte, out any) error {
	token, err := os.ReadFile(c.tokenFile)
	if err != nil {
		return fmt.Errorf("service account token: %w", err)
	}
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var st apiStatus
		json.Unmarshal(data, &st)
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, st.Message)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode: %w", method, path, err)
	}
	return nil
}

type objectMeta struct {
	Namespace       string            `json:"namespace"`
	Name            string            `json:"name"`
	Labels          map[string]string `json:"labels"`
	Annotations     map[string]string `json:"annotations"`
	OwnerReferences []struct {
		Kind       string `json:"kind"`
		Controller *bool  `json:"controller"`
	} `json:"ownerReferences"`
}

type node struct {
	Metadata objectMeta `json:"metadata"`
	Spec     struct {
		Unschedulable bool `json:"unschedulable"`
	} `json:"spec"`
}

type pod struct {
	Metadata objectMeta `json:"metadata"`
	Status   struct {
		Phase string `json:"phase"`
	} `json:"status"`
}

func (c *kubeClient) node(ctx context.Context, name string) (node, error) {
	var n node
	err := c.do(ctx, http.MethodGet, "/api/v1/nodes/"+url.PathEscape(name), nil, "", nil, &n)
	return n, err
}

// podsOnNode lists the pods bound to the node, in every namespace.
func (c *kubeClient) podsOnNode(ctx context.Context, name string) ([]pod, error) {
	var pods []pod
	q := url.Values{"fieldSelector": {"spec.nodeName=" + name}, "limit": {"500"}}
	for {
		var list struct {
			Metadata struct {
				Continue string `json:"continue"`
			} `json:"metadata"`
			Items []pod `json:"items"`
		}
		if err := c.do(ctx, http.MethodGet, "/api/v1/pods", q, "", nil, &list); err != nil {
			return nil, err
		}
		pods = append(pods, list.Items...)
		if list.Metadata.Continue == "" {
			return pods, nil
		}
		q.Set("continue", list.Metadata.Continue)
	}
}

// setLabel sets a label of the node, or removes it when value is nil, with a strategic merge patch.
func (c *kubeClient) setLabel(ctx context.Context, name, key string, value *string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]*string{key: value}}})
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPatch, "/api/v1/nodes/"+url.PathEscape(name), nil,
		"application/strategic-merge-patch+json", patch, nil)
}

// checkDrained refuses unless the node is cordoned and runs no pods but those the kubelet is expected to run through
// a runtime change: DaemonSet pods, static (mirror) pods and pods that have finished. The kubelet recreates those on
// the new runtime.
func checkDrained(ctx context.Context, c *kubeClient, nodeName string) error {
	n, err := c.node(ctx, nodeName)
	if err != nil {
		return fmt.Errorf("node %s: %w", nodeName, err)
	}
	if !n.Spec.Unschedulable {
		return errdefs.FailedPrecondition("node %s is not cordoned: run kubectl drain %s --ignore-daemonsets first", nodeName, nodeName)
	}
	pods, err := c.podsOnNode(ctx, nodeName)
	if err != nil {
		return fmt.Errorf("pods on node %s: %w", nodeName, err)
	}
	var blocking []string
	for _, p := range pods {
		if !survivesSwitch(p) {
			blocking = append(blocking, p.Metadata.Namespace+"/"+p.Metadata.Name)
		}
	}
	if n := len(blocking); n > 0 {
		if n > 10 {
			blocking = append(blocking[:10], "...")
		}
		return errdefs.FailedPrecondition("node %s is not drained: %d pods still run there (%s): run kubectl drain %s --ignore-daemonsets first",
			nodeName, n, strings.Join(blocking, ", "), nodeName)
	}
	return nil
}

func survivesSwitch(p pod) bool {
	if p.Status.Phase == "Succeeded" || p.Status.Phase == "Failed" {
		return true
	}
	if _, ok := p.Metadata.Annotations["kubernetes.io/config.mirror"]; ok {
		return true
	}
	for _, o := range p.Metadata.OwnerReferences {
		if o.Kind == "DaemonSet" && o.Controller != nil && *o.Controller {
			return true
		}
	}
	return false
}
