//go:build integration

package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// testRepo is a repository of the test bed's registry; the tests pull it under other registry names.
const testRepo = "e2e-test-images/busybox:1.29-2"

var (
	registryBinOnce sync.Once
	registryBin     string
	registryBinErr  error
)

// testRegistry starts a second instance of the test bed's registry (hack/cmd/registry) on the test bed's blob dir,
// on a free loopback port, with args (e.g. -tls-cert), and returns its host:port. It serves every test image.
func testRegistry(t *testing.T, args ...string) string {
	t.Helper()
	needImages(t)
	blobs := filepath.Join(envOr("BERTH_TESTBED_DIR", "/tmp/berth-testbed"), "blobs")
	if _, err := os.Stat(filepath.Join(blobs, "manifests.json")); err != nil {
		t.Skipf("no test bed blob dir: %v", err)
	}
	registryBinOnce.Do(func() {
		if dir := os.Getenv("BERTH_TEST_BIN_DIR"); dir != "" {
			registryBin = filepath.Join(dir, "berth-registry")
			_, registryBinErr = os.Stat(registryBin)
			return
		}
		registryBin = filepath.Join(filepath.Dir(berthdBin), "berth-registry")
		out, err := exec.Command("go", "build", "-o", registryBin, "../../hack/cmd/registry").CombinedOutput()
		if err != nil {
			registryBinErr = fmt.Errorf("build registry: %v: %s", err, out)
		}
	})
	if registryBinErr != nil {
		t.Skip(registryBinErr)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	log := &logBuffer{}
	cmd := exec.Command(registryBin, append([]string{"-addr", addr, "-dir", blobs}, args...)...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		if i == 200 {
			t.Fatalf("registry %s did not listen:\n%s", addr, log)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// testPKI is a CA and the certificates it signed, as PEM files in dir.
type testPKI struct {
	dir                                                  string
	ca                                                   *x509.Certificate
	caKey                                                *ecdsa.PrivateKey
	caFile, serverCert, serverKey, clientCert, clientKey string
}

// newPKI makes a CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA.
func newPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir()}
	p.caKey = newKey(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "berth test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &p.caKey.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	p.ca, _ = x509.ParseCertificate(der)
	p.caFile = p.write(t, "ca.pem", "CERTIFICATE", der)
	p.serverCert, p.serverKey = p.issue(t, "server", x509.ExtKeyUsageServerAuth, p.ca, p.caKey)
	p.clientCert, p.clientKey = p.issue(t, "client", x509.ExtKeyUsageClientAuth, p.ca, p.caKey)
	return p
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// issue writes a certificate for 127.0.0.1 signed by parent (itself when parent is nil: self-signed) and its key.
func (p *testPKI) issue(t *testing.T, name string, usage x509.ExtKeyUsage, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (cert, key string) {
	t.Helper()
	k := newKey(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	if parent == nil {
		parent, parentKey = tmpl, k
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &k.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return p.write(t, name+".pem", "CERTIFICATE", der), p.write(t, name+"-key.pem", "EC PRIVATE KEY", kder)
}

func (p *testPKI) write(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	f := filepath.Join(p.dir, name)
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func pull(t *testing.T, img runtimeapi.ImageServiceClient, ref string) error {
	t.Helper()
	_, err := img.PullImage(ctx(t), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	return err
}

// A containerd-style certs.d dir: tls.example's hosts.toml names a mirror that requires a client certificate
// (the test's CA signed the registry's and the client's certificates); the server is a dead port, so the pull can
// only succeed through the mirror. berthd config endpoints shows the same order.
func TestPullHostsTOMLClientCert(t *testing.T) {
	pki := newPKI(t)
	addr := testRegistry(t, "-tls-cert", pki.serverCert, "-tls-key", pki.serverKey, "-client-ca", pki.caFile)
	// The registry really refuses a client without a certificate.
	pool := x509.NewCertPool()
	pool.AddCert(pki.ca)
	plain := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	if resp, err := plain.Get("https://" + addr + "/v2/"); err == nil {
		resp.Body.Close()
		t.Fatalf("GET without a client certificate: %s, want a TLS failure", resp.Status)
	}

	d := newDaemon(t, "")
	certs := filepath.Join(d.dir, "certs.d")
	writeFile(t, d.config, string(must(os.ReadFile(d.config)))+fmt.Sprintf("[registry]\nconfig_path = %q\n", certs))
	// The CA file is relative to the host dir; client is a [cert, key] pair, as containerd reads them.
	writeFile(t, filepath.Join(certs, "tls.example", "ca.pem"), string(must(os.ReadFile(pki.caFile))))
	writeFile(t, filepath.Join(certs, "tls.example", "hosts.toml"), fmt.Sprintf(`server = "https://127.0.0.1:1"
[host."https://%s"]
  capabilities = ["pull", "resolve"]
  ca = "ca.pem"
  client = [[%q, %q]]
`, addr, pki.clientCert, pki.clientKey))

	var out, errb strings.Builder
	if code := run([]string{"config", "endpoints", "tls.example/" + testRepo, "--config", d.config}, &out, &errb); code != 0 {
		t.Fatalf("berthd config endpoints: %d %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "1. https://"+addr+"/v2  mirror  capabilities=pull,resolve  tls=ca:") ||
		!strings.Contains(lines[1], "client:"+pki.clientCert+"+"+pki.clientKey) || !strings.HasPrefix(lines[2], "2. https://127.0.0.1:1/v2") {
		t.Errorf("berthd config endpoints:\n%s", out.String())
	}

	d.start(t)
	_, img := d.clients(t)
	if err := pull(t, img, "tls.example/"+testRepo); err != nil {
		t.Fatalf("pull through the client-certificate mirror: %v\n%s", err, d.log)
	}
	if !strings.Contains(d.log.String(), "host="+addr) {
		t.Errorf("the pull was not logged as coming from %s:\n%s", addr, d.log)
	}
}

// berth.toml's own host entry with skip_verify pulls from a loopback registry serving a self-signed certificate
// (a loopback host with TLS settings is spoken to over HTTPS).
func TestPullSkipVerify(t *testing.T) {
	pki := &testPKI{dir: t.TempDir()}
	cert, key := pki.issue(t, "self", x509.ExtKeyUsageServerAuth, nil, nil)
	addr := testRegistry(t, "-tls-cert", cert, "-tls-key", key)
	d := newDaemon(t, fmt.Sprintf("[registry.hosts.%q]\nskip_verify = true\n", addr))
	d.start(t)
	_, img := d.clients(t)
	if err := pull(t, img, addr+"/"+testRepo); err != nil {
		t.Fatalf("pull from a skip_verify host: %v\n%s", err, d.log)
	}
}

// A mirror with a path: /v2 is appended to it (containerd's rule). Before, every such pull failed with "a path is
// not supported".
func TestPullMirrorWithPath(t *testing.T) {
	addr := testRegistry(t, "-prefix", "/cache")
	d := newDaemon(t, fmt.Sprintf("[registry.hosts.\"path.example\"]\nmirrors = [\"http://%s/cache\"]\nmirrors_only = true\n", addr))
	d.start(t)
	_, img := d.clients(t)
	if err := pull(t, img, "path.example/"+testRepo); err != nil {
		t.Fatalf("pull through a mirror with a path: %v\n%s", err, d.log)
	}
}

// registry.docker_config's auths give the credential of a registry that requires basic auth when the pull sends
// none of its own.
func TestPullDockerConfigCredentials(t *testing.T) {
	addr := testRegistry(t, "-basic-auth", "berth:s3cret")
	if resp, err := http.Get("http://" + addr + "/v2/"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET without credentials: %v %v, want 401", resp, err)
	}
	dockerConfig := filepath.Join(t.TempDir(), "config.json")
	writeFile(t, dockerConfig, fmt.Sprintf(`{"auths": {"http://%s": {"auth": %q}}}`, addr,
		base64.StdEncoding.EncodeToString([]byte("berth:s3cret"))))
	d := newDaemon(t, fmt.Sprintf("[registry]\ndocker_config = %q\n", dockerConfig))
	d.start(t)
	_, img := d.clients(t)
	if err := pull(t, img, addr+"/"+testRepo); err != nil {
		t.Fatalf("pull with docker config credentials: %v\n%s", err, d.log)
	}
	if strings.Contains(d.log.String(), "s3cret") {
		t.Error("the password is in berthd's log")
	}
}

// SIGHUP reloads the registry hosts: a mirror added in a drop-in is used by the next pull, with the log level
// raised in the same reload. A drop-in that fails validation keeps the running configuration (pulls still work)
// and the log says which file and key.
func TestReloadRegistry(t *testing.T) {
	addr := testRegistry(t)
	d := newDaemon(t, "[registry.hosts.\"reload.example\"]\nmirrors = [\"http://127.0.0.1:1\"]\nmirrors_only = true\n")
	d.start(t)
	_, img := d.clients(t)
	ref := "reload.example/" + testRepo
	if err := pull(t, img, ref); err == nil {
		t.Fatal("pull through a dead mirror succeeded")
	}
	dropIn := filepath.Join(d.dir, "berth.d", "50-reload.toml")
	writeFile(t, dropIn, fmt.Sprintf("[log]\nlevel = \"debug\"\n[registry.hosts.\"reload.example\"]\nmirrors = [\"http://%s\"]\nmirrors_only = true\n", addr))
	hup := func(want string) {
		t.Helper()
		before := len(d.log.String())
		d.cmd.Process.Signal(syscall.SIGHUP)
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(d.log.String()[before:], want) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the log after SIGHUP:\n%s", want, d.log.String()[before:])
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	hup("reloaded")
	if log := d.log.String(); !strings.Contains(log, "log.level") || !strings.Contains(log, "registryHostsChanged=[reload.example]") {
		t.Errorf("the reload did not log what changed:\n%s", log)
	}
	if err := pull(t, img, ref); err != nil {
		t.Fatalf("pull after the reload added a mirror: %v\n%s", err, d.log)
	}

	writeFile(t, dropIn, "[registry.hosts.\"reload.example\"]\nmirrors = [\"ftp://nowhere.example\"]\n")
	hup("reload refused")
	if log := d.log.String(); !strings.Contains(log, dropIn+`: registry.hosts.\"reload.example\".mirrors[0]`) {
		t.Errorf("the refused reload does not name the file and key:\n%s", log)
	}
	if _, err := img.RemoveImage(ctx(t), &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
		t.Fatal(err)
	}
	if err := pull(t, img, ref); err != nil {
		t.Fatalf("pull after a refused reload: %v (the running configuration should be kept)\n%s", err, d.log)
	}
	if d.cmd.Process.Signal(syscall.Signal(0)) != nil {
		t.Fatal("berthd exited")
	}
}
