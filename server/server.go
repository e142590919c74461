// Package server is the Warren broker: listener, connections, channels, vhosts and delivery.
package server

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/rs/zerolog"
)

// Config holds the broker settings that server.New needs.
type Config struct {
	// Logger receives structured logs. The zero value discards them.
	Logger zerolog.Logger
	// Heartbeat is the heartbeat interval offered in connection.tune (default 60s; 0 disables).
	Heartbeat time.Duration
	// FrameMax is the largest frame offered in connection.tune (default 131072).
	FrameMax uint32
	// ChannelMax is the highest channel number offered in connection.tune (default 2047).
	ChannelMax uint16
}

// Server is a running broker.
type Server struct {
	cfg Config
}

// New returns a broker configured by cfg.
func New(cfg Config) *Server { return &Server{cfg: cfg} }

// Serve accepts AMQP connections on ln until ctx is cancelled or Shutdown is called.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	return errors.New("server: not implemented yet")
}

// Shutdown closes every connection with connection.close 320 and waits for them to finish.
func (s *Server) Shutdown(ctx context.Context) error { return nil }
