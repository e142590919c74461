package server

import (
	"errors"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/warrenmq/warren/amqpwire"
)

// Login errors of Server.Login, the management API's HTTP basic auth.
var (
	// ErrInvalidCredentials: no such user, or the wrong password.
	ErrInvalidCredentials = errors.New("invalid credentials")
	// ErrLoopbackOnly: a loopback user (loopback-users) logging in from another address.
	ErrLoopbackOnly = errors.New("user can only log in via localhost")
)

// Login checks user's password, and that a loopback user comes from a loopback address, as
// the AMQP handshake does. It returns a copy of the account.
//
// Failed logins share the AMQP handshake's schedule per source address (authlimit.go): a
// source that keeps failing gets its refusals, and its next attempts checked, at most 50 a
// second over either protocol, and the refusals are logged in summary.
func (s *Server) Login(user, password string, remote net.Addr) (Account, error) {
	src := "unknown"
	if remote != nil {
		src = peerIP(remote)
	}
	at, reserved := s.loginLimit.admit(src, time.Now())
	if reserved {
		if err := s.loginLimit.wait(at); err != nil {
			return Account{}, err
		}
	}
	refuse := func(err error) (Account, error) {
		if !reserved {
			if werr := s.loginLimit.wait(s.loginLimit.failed(src, time.Now())); werr != nil {
				return Account{}, werr
			}
		}
		if s.loginLog.note(src, "user '"+user+"' (management API): "+err.Error(), time.Now()) {
			s.log.Warn().Str("user", user).Str("source", src).Str("reason", err.Error()).
				Msg("management login refused (further refusals for this address are logged in summary)")
		}
		return Account{}, err
	}
	u, ok := s.access.p.Load().login(user, password)
	if !ok {
		return refuse(ErrInvalidCredentials)
	}
	if u.Loopback && !isLoopback(remote) {
		return refuse(ErrLoopbackOnly)
	}
	out := *u
	out.Tags = slices.Clone(u.Tags)
	return out, nil
}

// HasVhostAccess says whether user has permissions (any) in vhost.
func (s *Server) HasVhostAccess(user, vhost string) bool {
	return s.access.p.Load().permissions(user, vhost) != nil
}

// ConnectionInfo is one open AMQP connection as the management API lists it.
type ConnectionInfo struct {
	// Name is RabbitMQ's: "peer -> local", e.g. "127.0.0.1:54321 -> 127.0.0.1:5672".
	Name             string
	User, Vhost      string
	Host, PeerHost   string
	Port, PeerPort   int
	TLS              bool
	AuthMechanism    string
	Heartbeat        time.Duration
	FrameMax         uint32
	ChannelMax       uint16
	ClientProperties amqpwire.Table
	ConnectedAt      time.Time
	// Channels is how many channels are open; State is "running", or with a resource alarm
	// "blocked" (the connection published and waits for the alarm to clear) or "blocking"
	// (it will be held when it next publishes), as RabbitMQ's.
	Channels int
	State    string
	// Socket traffic: bytes and read/write calls.
	RecvOct, RecvCnt, SendOct, SendCnt uint64
}

// connectionName is RabbitMQ's connection name: "peer -> local", IPv6 hosts in brackets.
func connectionName(peer, local net.Addr) string {
	return peer.String() + " -> " + local.String()
}

// hostPort splits a TCP address; other addresses are their string and port 0.
func hostPort(a net.Addr) (string, int) {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String(), ta.Port
	}
	return a.String(), 0
}

// Connections lists the open connections (handshake finished), sorted by name.
func (s *Server) Connections() []ConnectionInfo {
	conns := s.openConns()
	out := make([]ConnectionInfo, 0, len(conns))
	for _, c := range conns {
		out = append(out, c.info())
	}
	slices.SortFunc(out, func(a, b ConnectionInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// openConns are the connections that finished the handshake and are not being closed.
func (s *Server) openConns() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		if c.opened.Load() && !c.forced.Load() {
			conns = append(conns, c)
		}
	}
	return conns
}

// info describes c; it reads only what the handshake set before opened, atomics, and the
// channel count under chmu.
func (c *conn) info() ConnectionInfo {
	host, port := hostPort(c.nc.LocalAddr())
	peerHost, peerPort := hostPort(c.nc.RemoteAddr())
	c.chmu.Lock()
	channels := len(c.channels)
	c.chmu.Unlock()
	state := "running"
	switch {
	case c.alarmHeld.Load():
		state = "blocked"
	case c.srv.alarms.any():
		state = "blocking"
	}
	return ConnectionInfo{
		Channels: channels, State: state,
		RecvOct: c.io.recvOct.Load(), RecvCnt: c.io.recvCnt.Load(), SendOct: c.io.sendOct.Load(), SendCnt: c.io.sendCnt.Load(),
		Name: connectionName(c.nc.RemoteAddr(), c.nc.LocalAddr()), User: c.user, Vhost: c.vh.Name(),
		Host: host, Port: port, PeerHost: peerHost, PeerPort: peerPort, TLS: c.tls,
		AuthMechanism: c.mechanism, Heartbeat: c.heartbeat, FrameMax: c.frameMax, ChannelMax: c.channelMax,
		ClientProperties: c.clientProps, ConnectedAt: c.connectedAt,
	}
}

// CloseConnection closes the open connection called name (ConnectionInfo.Name) with
// 320 CONNECTION_FORCED and reason as the text after the dash. It reports whether there was
// such a connection.
func (s *Server) CloseConnection(name, reason string) bool {
	s.mu.Lock()
	var target *conn
	for c := range s.conns {
		if c.opened.Load() && !c.forced.Load() && connectionName(c.nc.RemoteAddr(), c.nc.LocalAddr()) == name {
			target = c
			break
		}
	}
	s.mu.Unlock()
	if target == nil {
		return false
	}
	target.log.Info().Str("reason", reason).Msg("closing the connection at a management request")
	target.forceClose(reason)
	return true
}
