package cluster

import (
	"context"
	"crypto/tls"
	"net"
)

// tlsDialer dials a peer over TLS with cfg.
func tlsDialer(cfg *tls.Config) func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		d := tls.Dialer{Config: cfg}
		return d.DialContext(ctx, "tcp", addr)
	}
}
