package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/configs"
)

// The broker's HTTP endpoints (the Prometheus endpoint, the management API) share how they
// listen and serve.

// listenHTTP opens the listener of the endpoint what (set by flag) on addr, nil when addr is
// off; with t (the setting tlsKey of the configuration file), HTTPS. An address in use or an
// unusable certificate stops the broker, as for the AMQP listeners.
func listenHTTP(what, flag, addr string, t *configs.TLS, tlsKey, file string) (net.Listener, error) {
	if addr == configs.HTTPOff {
		return nil, nil
	}
	if t != nil && (t.CertFile == "" || t.KeyFile == "") {
		return nil, fmt.Errorf("%s: %s needs both a certificate and a key file", what, tlsKey)
	}
	tc, err := t.ServerConfig(configs.Pos{File: file}, tlsKey)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: listen on %s (set %s to another address, or off): %w", what, addr, flag, err)
	}
	if tc != nil {
		return httpsListener{tls.NewListener(ln, tc)}, nil
	}
	return ln, nil
}

// httpsListener is a listener listenHTTP wrapped in TLS.
type httpsListener struct{ net.Listener }

// serveHTTP serves h on ln until the returned function is called; what names it in the log.
func serveHTTP(ln net.Listener, h http.Handler, what string, log zerolog.Logger) (stop func()) {
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	scheme := "http"
	if _, ok := ln.(httpsListener); ok {
		scheme = "https"
	}
	log.Info().Str("addr", ln.Addr().String()).Str("scheme", scheme).Msg("serving " + what)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Str("addr", ln.Addr().String()).Msg("stopped serving " + what)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := hs.Shutdown(ctx); err != nil {
			log.Warn().Err(err).Msg("did not shut down cleanly: " + what)
		}
		<-done
	}
}

// identity is the node name the HTTP endpoints and metrics report: in a cluster the node's
// --node-name (the name the queues' leader, members and node fields use), else RabbitMQ's
// shape, warren@host.
func identity(b *configs.Broker) string {
	if b.Cluster.Enabled() {
		return b.Cluster.NodeName
	}
	return nodeName()
}

// nodeName is warren@host.
func nodeName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return "warren@" + host
}
