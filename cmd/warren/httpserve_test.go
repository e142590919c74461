package main

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/configs/tlstest"
)

// TestHTTPPortInUse: an HTTP endpoint address another process holds stops the broker at start
// with an error naming it, before it creates its data dir; a bad address is refused by its
// flag.
func TestHTTPPortInUse(t *testing.T) {
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	for _, tc := range []struct{ flag, other, what string }{
		{"--prometheus-listen", "--management-listen", "prometheus endpoint"},
		{"--management-listen", "--prometheus-listen", "management API"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			held, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer held.Close()
			dir := filepath.Join(t.TempDir(), "data")
			err = run([]string{"--listen", freeAddr(t), tc.flag, held.Addr().String(), tc.other, "127.0.0.1:0", "--data-dir", dir}, devnull)
			if err == nil || !strings.Contains(err.Error(), tc.what+": listen on "+held.Addr().String()) {
				t.Fatalf("run = %v, want the %s listener's error", err, tc.what)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("data dir exists after the failed start (stat: %v)", err)
			}
			if err := run([]string{tc.flag, "nonsense"}, devnull); err == nil || !strings.Contains(err.Error(), tc.flag) {
				t.Errorf("run with a bad address = %v, want a %s error", err, tc.flag)
			}
		})
	}
}

// TestHTTPSEndpoints: with --management-tls-cert/-key and --prometheus-tls-cert/-key the real
// binary serves the management API and /metrics over HTTPS only (a client that trusts the
// certificate gets answers, a plain HTTP request does not), and a key without its certificate
// stops it at start.
func TestHTTPSEndpoints(t *testing.T) {
	dir := t.TempDir()
	cert, key := tlstest.WriteSelfSigned(t, dir)
	mgmtAddr, promAddr := freeAddr(t), freeAddr(t)
	_, _, lines := startBroker(t, "--management-listen", mgmtAddr, "--management-tls-cert", cert, "--management-tls-key", key,
		"--prometheus-listen", promAddr, "--prometheus-tls-cert", cert, "--prometheus-tls-key", key)
	go func() {
		for range lines {
		}
	}()
	pem, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	get := func(c *http.Client, url string) (int, string) {
		t.Helper()
		req, err := http.NewRequest("GET", url, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth("guest", "guest")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get(client, "https://"+mgmtAddr+"/api/overview"); code != 200 || !strings.Contains(body, `"rabbitmq_version"`) {
		t.Errorf("HTTPS /api/overview: %d %s", code, body)
	}
	if code, body := get(client, "https://"+promAddr+"/metrics"); code != 200 || !strings.Contains(body, "rabbitmq_identity_info") {
		t.Errorf("HTTPS /metrics: %d %.200s", code, body)
	}
	// Go's TLS server answers a plain HTTP request with 400 and no API.
	if code, body := get(&http.Client{Timeout: 10 * time.Second}, "http://"+mgmtAddr+"/api/overview"); code != 400 || strings.Contains(body, "rabbitmq_version") {
		t.Errorf("plain HTTP to the HTTPS management API: %d %s", code, body)
	}

	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	err = run([]string{"--listen", freeAddr(t), "--prometheus-listen", "off", "--management-listen", "127.0.0.1:0",
		"--management-tls-key", key, "--data-dir", filepath.Join(dir, "data")}, devnull)
	if err == nil || !strings.Contains(err.Error(), "management-tls needs both a certificate and a key file") {
		t.Errorf("a key without a certificate: run = %v", err)
	}
}
