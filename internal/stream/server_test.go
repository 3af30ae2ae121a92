package stream

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "berth-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

func TestServerTLSAndTokens(t *testing.T) {
	cert, key := selfSigned(t)
	s, err := New(Config{Address: "127.0.0.1:0", TLSCert: cert, TLSKey: key})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()

	if !strings.HasPrefix(s.URL(), "https://127.0.0.1:") || strings.HasSuffix(s.URL(), ":0") {
		t.Fatalf("URL %q: want https and the bound port", s.URL())
	}
	resp, err := s.GetExec(&runtimeapi.ExecRequest{ContainerId: "c", Cmd: []string{"true"}, Stdout: true})
	if err != nil || !strings.HasPrefix(resp.Url, s.URL()+"/exec/") {
		t.Fatalf("GetExec = %v, %v", resp, err)
	}
	if _, err := s.GetExec(&runtimeapi.ExecRequest{ContainerId: "c", Cmd: []string{"true"}, Tty: true, Stderr: true}); err == nil {
		t.Fatal("GetExec with tty and stderr succeeded")
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	// An unknown token is refused (the real one is consumed by its first use).
	r, err := client.Get(s.URL() + "/exec/notatoken")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown token: status %d, want 404", r.StatusCode)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Close")
	}
}

func TestTrackedConnEndsWithPeer(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{conns: map[*trackedConn]struct{}{}}
	tl := &trackingListener{Listener: lis, srv: s}
	defer tl.Close()
	client, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := tl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	ctx := connContext(context.Background(), c)
	// A deadline is not the peer leaving.
	_ = c.SetReadDeadline(time.Now().Add(-time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || ctx.Err() != nil {
		t.Fatalf("read past deadline: %v; ctx %v", err, ctx.Err())
	}
	_ = c.SetReadDeadline(time.Time{})
	client.Close()
	_, _ = c.Read(make([]byte, 1))
	select {
	case <-ctx.Done():
	case <-time.After(time.Second):
		t.Fatal("context did not end when the peer left")
	}
	c.Close()
	if len(s.conns) != 0 {
		t.Fatalf("%d connections still tracked after Close", len(s.conns))
	}
}
