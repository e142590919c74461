package configs

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// TLSConfig builds the listener's server TLS configuration: its certificate and key, and
// for client certificates the CA pool with VerifyPeer (verify a certificate if the client
// sends one) or FailIfNoPeerCert (require one). It is nil, nil for a plain amqp listener.
// Errors name the listener's position and the file at fault.
func (l Listener) TLSConfig() (*tls.Config, error) {
	if l.TLS == nil {
		if l.Protocol == "amqps" {
			return nil, &Error{Pos: l.Pos, Msg: "protocol amqps requires a tls section with cert-file and key-file"}
		}
		return nil, nil
	}
	return l.TLS.ServerConfig(l.Pos, "listener "+l.Address)
}

// ServerConfig builds a server TLS configuration from t (nil, nil when t is nil); what names
// the listener or setting in errors, with pos.
func (t *TLS) ServerConfig(pos Pos, what string) (*tls.Config, error) {
	if t == nil {
		return nil, nil
	}
	fail := func(format string, args ...any) error {
		return &Error{Pos: pos, Msg: what + ": " + fmt.Sprintf(format, args...)}
	}
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fail("cert-file %q, key-file %q: %v", t.CertFile, t.KeyFile, err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if t.MinVersion == "1.3" {
		cfg.MinVersion = tls.VersionTLS13
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fail("ca-file: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fail("ca-file %q holds no PEM certificates", t.CAFile)
		}
		cfg.ClientCAs = pool
	}
	switch {
	case t.FailIfNoPeerCert:
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	case t.VerifyPeer:
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	if cfg.ClientAuth != tls.NoClientCert && cfg.ClientCAs == nil {
		return nil, fail("verify-peer requires ca-file")
	}
	return cfg, nil
}
