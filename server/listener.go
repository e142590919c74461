package server

import (
	"crypto/tls"
	"net"
)

// tlsListener is a listener made by NewTLSListener: Serve logs it as amqps, and the
// management API's certificate check reads cfg.
type tlsListener struct {
	net.Listener
	cfg *tls.Config
}

// NewTLSListener wraps inner in TLS with cfg, as tls.NewListener does, so that its
// connections are AMQP over TLS (amqps) and Serve says so when it starts.
func NewTLSListener(inner net.Listener, cfg *tls.Config) net.Listener {
	return tlsListener{tls.NewListener(inner, cfg), cfg}
}

// listenerProtocol is "amqps" for a listener from NewTLSListener, else "amqp".
func listenerProtocol(ln net.Listener) string {
	if _, ok := ln.(tlsListener); ok {
		return "amqps"
	}
	return "amqp"
}
