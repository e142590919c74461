package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/configs"
	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/server/mgmt"
)

// listenManagement opens the management API's listener, nil when it is off. An address in
// use stops the broker, as for the AMQP listeners.
func listenManagement(b *configs.Broker) (net.Listener, error) {
	if b.ManagementListen == configs.ManagementOff {
		return nil, nil
	}
	ln, err := net.Listen("tcp", b.ManagementListen)
	if err != nil {
		return nil, fmt.Errorf("management API: listen on %s (set --management-listen to another address, or off): %w", b.ManagementListen, err)
	}
	return ln, nil
}

// serveManagement serves the management API on ln until the returned function is called.
func serveManagement(ln net.Listener, srv *server.Server, b *configs.Broker, log zerolog.Logger) (stop func()) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	id := mgmt.Identity{Node: "warren@" + host,
		Product: server.Product{Name: b.Product.Name, Version: b.Product.Version}}
	hs := &http.Server{
		Handler:           mgmt.Handler(srv, id, log),
		ReadHeaderTimeout: 10 * time.Second,
	}
	log.Info().Str("addr", ln.Addr().String()).Msg("serving the management API on /api")
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Str("addr", ln.Addr().String()).Msg("management API stopped")
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := hs.Shutdown(ctx); err != nil {
			log.Warn().Err(err).Msg("management API did not shut down cleanly")
		}
		<-done
	}
}
