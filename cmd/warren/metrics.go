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
	"github.com/warrenmq/warren/server/metrics"
)

// listenPrometheus opens the Prometheus endpoint's listener, nil when it is off. An address in
// use stops the broker, as for the AMQP listeners.
func listenPrometheus(b *configs.Broker) (net.Listener, error) {
	if b.PrometheusListen == configs.PrometheusOff {
		return nil, nil
	}
	ln, err := net.Listen("tcp", b.PrometheusListen)
	if err != nil {
		return nil, fmt.Errorf("prometheus endpoint: listen on %s (set --prometheus-listen to another address, or off): %w", b.PrometheusListen, err)
	}
	return ln, nil
}

// serveMetrics serves /metrics on ln until the returned function is called.
func serveMetrics(ln net.Listener, srv *server.Server, b *configs.Broker, log zerolog.Logger) (stop func()) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	id := metrics.Identity{Node: "warren@" + host,
		Product: server.Product{Name: b.Product.Name, Version: b.Product.Version}}
	hs := &http.Server{
		Handler:           metrics.Handler(srv, id, log),
		ReadHeaderTimeout: 10 * time.Second,
	}
	log.Info().Str("addr", ln.Addr().String()).Msg("serving Prometheus metrics on /metrics")
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Str("addr", ln.Addr().String()).Msg("Prometheus endpoint stopped")
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := hs.Shutdown(ctx); err != nil {
			log.Warn().Err(err).Msg("Prometheus endpoint did not shut down cleanly")
		}
		<-done
	}
}
