package conformance

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// testPKI is a CA and the certificates the TLS test signs with it.
type testPKI struct {
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	pool   *x509.CertPool // trusts the CA
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	key := newECKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "warren conformance CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testPKI{caCert: cert, caKey: key, pool: pool}
}

func newECKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// issue makes a certificate for cn with usage, signed by the CA (or self-signed when
// selfSigned), for 127.0.0.1 as an IP SAN.
func (p *testPKI) issue(t *testing.T, cn string, usage x509.ExtKeyUsage, selfSigned bool) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	key := newECKey(t)
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	parent, signer := p.caCert, p.caKey
	if selfSigned {
		parent, signer = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, cert
}

// writePEM writes the DER blocks of one type to dir/name.
func writePEM(t *testing.T, dir, name, typ string, blocks ...[]byte) {
	t.Helper()
	var out []byte
	for _, b := range blocks {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b})...)
	}
	if err := os.WriteFile(filepath.Join(dir, name), out, 0o600); err != nil {
		t.Fatal(err)
	}
}

// testConfigTLS runs a broker with three listeners: plain AMQP, AMQPS with the server's
// certificate and min-version 1.3, and AMQPS that requires a client certificate signed by the
// CA. Clients that trust the CA connect, publish and get their message back; a client held to
// TLS 1.2, a client without a certificate, a client with a certificate from another CA, and a
// plain AMQP client on a TLS port are refused.
func testConfigTLS(t *testing.T, bin string) {
	pki := newTestPKI(t)
	dir := t.TempDir()
	server, serverCert := pki.issue(t, "127.0.0.1", x509.ExtKeyUsageServerAuth, false)
	keyDER, err := x509.MarshalPKCS8PrivateKey(server.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, dir, "server.pem", "CERTIFICATE", server.Certificate[0])
	writePEM(t, dir, "server-key.pem", "PRIVATE KEY", keyDER)
	writePEM(t, dir, "ca.pem", "CERTIFICATE", pki.caCert.Raw)
	client, _ := pki.issue(t, "guest", x509.ExtKeyUsageClientAuth, false)
	rogue, _ := pki.issue(t, "guest", x509.ExtKeyUsageClientAuth, true)

	plain, tlsAddr, mtlsAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	writeCfgFile(t, dir, "warren.yaml", dedent(fmt.Sprintf(`
		listeners:
		  - protocol: amqp
		    address: %s
		  - protocol: amqps
		    address: %s
		    tls:
		      cert-file: server.pem
		      key-file: server-key.pem
		      min-version: "1.3"
		  - protocol: amqps
		    address: %s
		    tls:
		      cert-file: server.pem
		      key-file: server-key.pem
		      ca-file: ca.pem
		      verify-peer: true
		      fail-if-no-peer-cert: true
		data-dir: data
	`, plain, tlsAddr, mtlsAddr)))
	b := startCfgBrokerIn(t, bin, dir, plain)
	// The start-up log tells the TLS listeners from the plain one.
	for _, l := range []struct{ addr, want string }{{plain, "protocol=amqp tls=false"}, {tlsAddr, "protocol=amqps tls=true"}, {mtlsAddr, "protocol=amqps tls=true"}} {
		line, ok := b.log.waitFor(0, timeout, func(s string) bool {
			return strings.Contains(s, readyLine) && strings.Contains(s+" ", "addr="+l.addr+" ")
		})
		if !ok {
			t.Errorf("no %q line for %s in the log:\n%s", readyLine, l.addr, b.log.dump())
		} else if !strings.Contains(line, l.want) {
			t.Errorf("the log says %q for %s, want %s", line, l.addr, l.want)
		}
	}

	dialTLS := func(addr string, cfg *tls.Config) (*amqp.Connection, error) {
		return amqp.DialConfig("amqps://guest:guest@"+addr+"/", amqp.Config{TLSClientConfig: cfg, Dial: amqp.DefaultDial(timeout)})
	}
	// roundTrip publishes over conn and gets the message back.
	roundTrip := func(what string, conn *amqp.Connection) {
		t.Helper()
		defer conn.Close()
		ch := channel(t, conn)
		q, err := ch.QueueDeclare("", false, true, true, false, nil)
		if err != nil {
			t.Fatalf("%s: declare a queue: %v", what, err)
		}
		if err := ch.Confirm(false); err != nil {
			t.Fatal(err)
		}
		confirmPublish(t, ch, "", q.Name, amqp.Publishing{Body: []byte(what)})
		if d := get(t, ch, q.Name, true); string(d.Body) != what {
			t.Errorf("%s: got %q back, want %q", what, d.Body, what)
		}
	}

	t.Run("server certificate", func(t *testing.T) {
		conn, err := dialTLS(tlsAddr, &tls.Config{RootCAs: pki.pool})
		if err != nil {
			t.Fatalf("amqps to %s trusting the CA: %v", tlsAddr, err)
		}
		st := conn.ConnectionState()
		if len(st.PeerCertificates) == 0 || !st.PeerCertificates[0].Equal(serverCert) {
			t.Errorf("the broker did not present server.pem")
		}
		if st.Version != tls.VersionTLS13 {
			t.Errorf("TLS version %s, want TLS 1.3", tls.VersionName(st.Version))
		}
		roundTrip("over TLS", conn)
	})

	t.Run("min-version", func(t *testing.T) {
		conn, err := dialTLS(tlsAddr, &tls.Config{RootCAs: pki.pool, MaxVersion: tls.VersionTLS12})
		if err == nil {
			conn.Close()
			t.Errorf("a TLS 1.2 client connected to a listener with min-version 1.3")
		}
	})

	t.Run("plain AMQP on a TLS port", func(t *testing.T) {
		conn, err := amqp.DialConfig("amqp://guest:guest@"+tlsAddr+"/", amqp.Config{Dial: amqp.DefaultDial(timeout)})
		if err == nil {
			conn.Close()
			t.Errorf("a plain AMQP client completed the handshake on the amqps listener")
		}
		// And the plain listener still works next to it.
		roundTrip("over plain AMQP", dialConfig(t, "amqp://guest:guest@"+plain+"/", amqp.Config{}))
	})

	t.Run("client certificate required", func(t *testing.T) {
		conn, err := dialTLS(mtlsAddr, &tls.Config{RootCAs: pki.pool})
		if err == nil {
			conn.Close()
			t.Errorf("a client without a certificate connected to a listener with fail-if-no-peer-cert")
		}
		conn, err = dialTLS(mtlsAddr, &tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{rogue}})
		if err == nil {
			conn.Close()
			t.Errorf("a client with a self-signed certificate connected to a listener with verify-peer")
		}
		conn, err = dialTLS(mtlsAddr, &tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{client}})
		if err != nil {
			t.Fatalf("a client with a certificate signed by ca.pem: %v", err)
		}
		roundTrip("over mutual TLS", conn)
	})
}
