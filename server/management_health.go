package server

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"slices"

	"github.com/warrenmq/warren/server/queue"
	"github.com/warrenmq/warren/server/vhost"
)

// What the management API's health checks and aliveness test read from the broker.

// ActiveAlarms names the resource alarms in effect, in the order they were raised, with
// RabbitMQ's resource names: "memory", "disk space".
func (s *Server) ActiveAlarms() []string {
	s.alarms.mu.Lock()
	defer s.alarms.mu.Unlock()
	out := make([]string, 0, len(s.alarms.raised))
	for _, k := range s.alarms.raised {
		if k == alarmMemory {
			out = append(out, "memory")
		} else {
			out = append(out, "disk space")
		}
	}
	return out
}

// ListenerInfo is one AMQP listener that Serve is accepting on.
type ListenerInfo struct {
	// Protocol is RabbitMQ's name for it: "amqp", or "amqp/ssl" over TLS.
	Protocol string
	// Interface and Port are where it listens.
	Interface string
	Port      int
	// Certificates are the leaf certificates a TLS listener presents.
	Certificates []*x509.Certificate
}

// Listeners lists the AMQP listeners being served, by port.
func (s *Server) Listeners() []ListenerInfo {
	s.mu.Lock()
	lns := make([]net.Listener, 0, len(s.listeners))
	for ln := range s.listeners {
		lns = append(lns, ln)
	}
	s.mu.Unlock()
	out := make([]ListenerInfo, 0, len(lns))
	for _, ln := range lns {
		host, port := hostPort(ln.Addr())
		li := ListenerInfo{Protocol: "amqp", Interface: host, Port: port}
		if tl, ok := ln.(tlsListener); ok {
			li.Protocol = "amqp/ssl"
			li.Certificates = leafCertificates(tl.cfg)
		}
		out = append(out, li)
	}
	slices.SortFunc(out, func(a, b ListenerInfo) int { return a.Port - b.Port })
	return out
}

// leafCertificates are the parsed first certificates of cfg's chains.
func leafCertificates(cfg *tls.Config) []*x509.Certificate {
	if cfg == nil {
		return nil
	}
	var out []*x509.Certificate
	for _, c := range cfg.Certificates {
		leaf := c.Leaf
		if leaf == nil && len(c.Certificate) > 0 {
			var err error
			if leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
				continue
			}
		}
		if leaf != nil {
			out = append(out, leaf)
		}
	}
	return out
}

// AlivenessTestQueue is the queue the aliveness test declares (and, as RabbitMQ, leaves).
const AlivenessTestQueue = "aliveness-test"

// AlivenessTest is RabbitMQ's aliveness test, as user in vh: declare the non-durable queue
// aliveness-test, publish "test_message" to it through the default exchange, and get it back.
// It reports whether the get found the message.
func (s *Server) AlivenessTest(user, vh string) (bool, error) {
	if _, err := s.DeclareQueueAs(user, vh, vhost.QueueDecl{Name: AlivenessTestQueue}); err != nil {
		return false, err
	}
	msg := &queue.Message{RoutingKey: AlivenessTestQueue, Body: []byte("test_message")}
	if _, err := s.PublishAs(user, vh, msg); err != nil {
		return false, err
	}
	got, err := s.GetAs(user, vh, AlivenessTestQueue, 1, GetAck)
	if err != nil {
		return false, err
	}
	return len(got) == 1, nil
}
