package server

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/warrenmq/warren/amqpwire"
)

const (
	// maxRefusing bounds the connections over MaxConnections that are being refused with
	// connection.close at once; beyond it an over-limit socket is closed as soon as it is
	// accepted, without a word.
	maxRefusing = 64
	// refuseTimeout bounds how long an over-limit connection may take to reach the refusal.
	refuseTimeout = 2 * time.Second
	// floodSummaryEvery is how often floods of refused connections and logins are summarised.
	floodSummaryEvery = 10 * time.Second
	// floodSummaryKeys bounds the sources a flood summary tracks; the rest are counted together.
	floodSummaryKeys = 1024
)

// peerIP is the host part of a peer address, the key of per-source limits and summaries.
func peerIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// limitText is RabbitMQ's refusal text for its node connection limit (rabbit_reader).
func limitText(limit int) string {
	return fmt.Sprintf("connection refused: node connection limit (%d) is reached", limit)
}

// admit registers an accepted socket as a connection. It reports false when MaxConnections are
// already open or opening; the socket is then refused (and closed) on its own goroutine.
// Called with s.mu held.
func (s *Server) admit(nc net.Conn) bool {
	limit := s.cfg.MaxConnections
	if limit <= 0 || len(s.conns) < limit {
		return true
	}
	detail := nc.RemoteAddr().String()
	if s.overLimitLog.note("connection limit", detail, time.Now()) {
		s.log.Warn().Int("limit", limit).Str("peer", detail).
			Msg("connection refused: connection limit reached (further refusals are logged in summary)")
	}
	if len(s.refusing) >= maxRefusing {
		_ = nc.Close()
		return false
	}
	s.refusing[nc] = struct{}{}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.refuseOverLimit(nc, limit)
		s.mu.Lock()
		delete(s.refusing, nc)
		s.mu.Unlock()
	}()
	return false
}

// refuseOverLimit tells a client over the connection limit why it cannot connect: after its
// protocol header it gets connection.start, and after its start-ok (whose credentials are not
// checked) connection.close 530 with RabbitMQ's text, which clients report as the reason the
// connection failed. A client that does not get that far in refuseTimeout (or the handshake
// timeout, if shorter) is just disconnected.
func (s *Server) refuseOverLimit(nc net.Conn, limit int) {
	c := newConn(s, nc)
	defer func() { _ = nc.Close() }()
	_ = nc.SetDeadline(time.Now().Add(min(refuseTimeout, s.cfg.HandshakeTimeout)))
	if err := c.start(); err != nil {
		return
	}
	if _, err := expectMethod[*amqpwire.ConnectionStartOk](c); err != nil {
		return
	}
	c.refuse(amqpwire.NewConnectionError(amqpwire.CodeNotAllowed, amqpwire.ClassConnection, amqpwire.MethodConnectionStartOk, "%s", limitText(limit)))
}

// start reads the protocol header and sends a connection.start that names the broker.
func (c *conn) start() error {
	if err := amqpwire.ReadProtocolHeader(c.nc); err != nil {
		if errors.Is(err, amqpwire.ErrBadProtocolHeader) {
			// 0-9-1 §4.2.2: answer a bad header with the one we speak, then close.
			_, _ = c.nc.Write(amqpwire.ProtocolHeader)
		}
		return fmt.Errorf("protocol header: %w", err)
	}
	props, err := amqpwire.NewTable(map[string]any{"product": "Warren", "version": Version})
	if err != nil {
		return fmt.Errorf("server properties: %w", err)
	}
	return c.sendNow(&amqpwire.ConnectionStart{VersionMajor: 0, VersionMinor: 9, ServerProperties: props,
		Mechanisms: "PLAIN AMQPLAIN", Locales: "en_US"})
}
