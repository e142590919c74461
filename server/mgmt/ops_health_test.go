package mgmt_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"math/big"
	"net"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/server/mgmt"
)

// healthBroker serves a broker with a plain and a TLS AMQP listener (certificate valid for
// ten more days) and its API; it returns the broker, the API's URL and the plain port.
func healthBroker(t *testing.T) (*server.Server, string, int) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "warren-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(10 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{Logger: zerolog.Nop(), MemoryLimit: 1 << 40})
	if err := srv.Recover(); err != nil {
		t.Fatal(err)
	}
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tlsLn := server.NewTLSListener(inner, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	served := make(chan struct{}, 2)
	for _, ln := range []net.Listener{plain, tlsLn} {
		go func() { served <- struct{}{}; _ = srv.Serve(context.Background(), ln) }()
	}
	<-served
	<-served
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	hs := httptest.NewServer(mgmt.Handler(t.Context(), srv, mgmt.Identity{Node: "warren@test"}, zerolog.Nop()))
	t.Cleanup(hs.Close)
	// Serve registers its listener before it accepts: wait until both are listed.
	deadline := time.Now().Add(5 * time.Second)
	for len(srv.Listeners()) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	return srv, hs.URL + "/api", plain.Addr().(*net.TCPAddr).Port
}

// TestHealthAlarms: /api/health/checks/alarms and local-alarms answer 503 with the memory
// alarm while it is in effect (a memory limit of one byte) and 200 again once it clears.
func TestHealthAlarms(t *testing.T) {
	srv, api, _ := healthBroker(t)
	want(t, "GET", api+"/health/checks/alarms", "guest", "", 200, "")
	srv.SetResourceLimits(1, 0)
	waitStatus(t, api+"/health/checks/alarms", 503)
	body := want(t, "GET", api+"/health/checks/local-alarms", "guest", "", 503, "There are alarms in effect on the node")
	var failed struct {
		Status string
		Alarms []map[string]string
	}
	if err := json.Unmarshal(body, &failed); err != nil || failed.Status != "failed" || len(failed.Alarms) != 1 ||
		failed.Alarms[0]["resource"] != "memory" || failed.Alarms[0]["node"] != "warren@test" {
		t.Fatalf("local-alarms: %s", body)
	}
	want(t, "GET", api+"/health/checks/alarms", "guest", "", 503, "There are alarms in effect in the cluster")
	srv.SetResourceLimits(1<<40, 0)
	waitStatus(t, api+"/health/checks/alarms", 200)
}

// waitStatus polls url until it answers status (the resource monitor samples on its own
// schedule, kicked by SetResourceLimits).
func waitStatus(t *testing.T, url string, status int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _, body := do(t, "GET", url, "guest", "")
		if code == status {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %d %s, want %d", url, code, body, status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHealthListenersAndCertificates: the listener checks see the AMQP listeners (the TLS one
// as amqp/ssl) and the API's own, and the certificate check fails when the TLS listener's
// certificate expires within the period asked.
func TestHealthListenersAndCertificates(t *testing.T) {
	_, api, port := healthBroker(t)
	want(t, "GET", api+"/health/checks/port-listener/"+strconv.Itoa(port), "guest", "", 200, "")
	body := want(t, "GET", api+"/health/checks/port-listener/1", "guest", "", 503, "No active listener")
	var missing struct {
		Missing int
		Ports   []int
	}
	if err := json.Unmarshal(body, &missing); err != nil || missing.Missing != 1 || len(missing.Ports) != 3 {
		t.Fatalf("port-listener/1: %s, want the two AMQP ports and the API's", body)
	}
	want(t, "GET", api+"/health/checks/port-listener/abc", "guest", "", 400, "Invalid port")
	for _, p := range []string{"amqp", "amqp091", "AMQP0-9-1", "amqps", "amqp%2Fssl", "http", "management"} {
		want(t, "GET", api+"/health/checks/protocol-listener/"+p, "guest", "", 200, "")
	}
	want(t, "GET", api+"/health/checks/protocol-listener/mqtt", "guest", "", 503, "No active listener")

	want(t, "GET", api+"/health/checks/certificate-expiration/1/weeks", "guest", "", 200, "")
	body = want(t, "GET", api+"/health/checks/certificate-expiration/2/weeks", "guest", "", 503, "Certificates expiring")
	var expiring struct{ Expired []map[string]any }
	if err := json.Unmarshal(body, &expiring); err != nil || len(expiring.Expired) != 1 || expiring.Expired[0]["protocol"] != "amqp/ssl" {
		t.Fatalf("certificate-expiration/2/weeks: %s", body)
	}
	want(t, "GET", api+"/health/checks/certificate-expiration/1/months", "guest", "", 503, "Certificates expiring")
	want(t, "GET", api+"/health/checks/certificate-expiration/x/days", "guest", "", 400, "Invalid expiration value.")
	want(t, "GET", api+"/health/checks/certificate-expiration/1/fortnights", "guest", "", 400,
		"Time unit not recognised. Supported units: days, weeks, months, years.")
}
