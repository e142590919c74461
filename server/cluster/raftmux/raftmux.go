// Package raftmux carries the traffic of every Raft group on a node over one listener and
// one connection per peer: the node's "one transport, multiplexed for every group".
//
// Each TCP (or TLS) connection between two nodes starts with a handshake that proves both
// ends hold the cluster's shared secret (an HMAC-SHA256 challenge, each way), then carries a
// yamux session. A Raft group gets a raft.StreamLayer (Mux.Layer) for hashicorp/raft's
// NetworkTransport: each of its connections is a yamux stream whose first 8 bytes name the
// group, so the receiving node hands it to that group's transport.
package raftmux

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hashicorp/yamux"
	"github.com/rs/zerolog"
)

// Config is a node's side of the cluster transport.
type Config struct {
	// Listener accepts the other nodes' connections (TCP; the caller wraps it in TLS when the
	// cluster uses TLS).
	Listener net.Listener
	// Advertise is the address the other nodes dial (host:port); "" is the listener's.
	Advertise string
	// Dial opens a connection to another node's listener (TCP, or TLS); nil is a plain TCP
	// dial.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// Node is this node's name, sent in the handshake and logged by the other end.
	Node string
	// Secret is the cluster's shared secret; both ends must hold the same one.
	Secret []byte
	Logger zerolog.Logger
}

// handshakeTimeout bounds the handshake of a new connection.
const handshakeTimeout = 10 * time.Second

// magic opens every connection, from the accepting side: the protocol and its version.
var magic = [5]byte{'W', 'R', 'N', 'C', 1}

// ErrClosed is returned by a closed Mux or Layer.
var ErrClosed = errors.New("raftmux: closed")

// Mux is one node's cluster transport.
type Mux struct {
	cfg Config
	log zerolog.Logger

	mu       sync.Mutex
	closed   bool
	layers   map[uint64]*Layer
	sessions map[string]*yamux.Session // outgoing, by address
	incoming map[*yamux.Session]struct{}
	dialing  map[string]*sync.Mutex // one dial at a time per address
	wg       sync.WaitGroup
}

// New starts accepting the other nodes' connections on cfg.Listener.
func New(cfg Config) *Mux {
	if cfg.Advertise == "" {
		cfg.Advertise = cfg.Listener.Addr().String()
	}
	if cfg.Dial == nil {
		cfg.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		}
	}
	m := &Mux{cfg: cfg, log: cfg.Logger.With().Str("component", "cluster transport").Logger(),
		layers: map[uint64]*Layer{}, sessions: map[string]*yamux.Session{},
		incoming: map[*yamux.Session]struct{}{}, dialing: map[string]*sync.Mutex{}}
	m.wg.Add(1)
	go m.acceptLoop()
	return m
}

// Addr is the address the other nodes dial.
func (m *Mux) Addr() string { return m.cfg.Advertise }

// Close stops accepting, closes every session (every stream of every group) and every layer.
func (m *Mux) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	var sessions []*yamux.Session
	for _, s := range m.sessions {
		sessions = append(sessions, s)
	}
	for s := range m.incoming {
		sessions = append(sessions, s)
	}
	var layers []*Layer
	for _, l := range m.layers {
		layers = append(layers, l)
	}
	m.mu.Unlock()
	err := m.cfg.Listener.Close()
	for _, s := range sessions {
		_ = s.Close()
	}
	for _, l := range layers {
		_ = l.Close()
	}
	m.wg.Wait()
	return err
}

func yamuxConfig() *yamux.Config {
	c := yamux.DefaultConfig()
	c.LogOutput = io.Discard
	c.StreamOpenTimeout = 10 * time.Second
	return c
}

func (m *Mux) acceptLoop() {
	defer m.wg.Done()
	for {
		c, err := m.cfg.Listener.Accept()
		if err != nil {
			m.mu.Lock()
			closed := m.closed
			m.mu.Unlock()
			if !closed {
				m.log.Error().Err(err).Msg("cluster listener stopped accepting")
			}
			return
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.serveConn(c)
		}()
	}
}

// serveConn authenticates a peer's connection and serves its streams until it closes.
func (m *Mux) serveConn(c net.Conn) {
	peer, err := m.acceptHandshake(c)
	if err != nil {
		m.log.Warn().Err(err).Str("peer", c.RemoteAddr().String()).Msg("cluster connection refused")
		_ = c.Close()
		return
	}
	sess, err := yamux.Server(c, yamuxConfig())
	if err != nil {
		_ = c.Close()
		return
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		_ = sess.Close()
		return
	}
	m.incoming[sess] = struct{}{}
	m.mu.Unlock()
	m.log.Debug().Str("peer", peer).Str("addr", c.RemoteAddr().String()).Msg("cluster peer connected")
	m.serveStreams(sess, peer)
	m.mu.Lock()
	delete(m.incoming, sess)
	m.mu.Unlock()
}

// serveStreams hands each stream of sess to the group its header names.
func (m *Mux) serveStreams(sess *yamux.Session, peer string) {
	for {
		st, err := sess.Accept()
		if err != nil {
			return
		}
		var hdr [8]byte
		_ = st.SetReadDeadline(time.Now().Add(handshakeTimeout))
		if _, err := io.ReadFull(st, hdr[:]); err != nil {
			_ = st.Close()
			continue
		}
		_ = st.SetReadDeadline(time.Time{})
		group := binary.BigEndian.Uint64(hdr[:])
		m.mu.Lock()
		l := m.layers[group]
		m.mu.Unlock()
		if l == nil || !l.offer(st) {
			m.log.Debug().Str("peer", peer).Uint64("group", group).Msg("stream for a group this node does not serve")
			_ = st.Close()
		}
	}
}

// mac is HMAC-SHA256(secret, role | nonce | name).
func (m *Mux) mac(role string, nonce []byte, name string) []byte {
	h := hmac.New(sha256.New, m.cfg.Secret)
	h.Write([]byte(role))
	h.Write(nonce)
	h.Write([]byte(name))
	return h.Sum(nil)
}

// acceptHandshake: send magic and a nonce; read the peer's name and its MAC; answer with
// ours. It returns the peer's name.
func (m *Mux) acceptHandshake(c net.Conn) (string, error) {
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	defer func() { _ = c.SetDeadline(time.Time{}) }()
	var nonce [32]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return "", err
	}
	if _, err := c.Write(append(magic[:], nonce[:]...)); err != nil {
		return "", fmt.Errorf("handshake: %w", err)
	}
	var n [1]byte
	if _, err := io.ReadFull(c, n[:]); err != nil {
		return "", fmt.Errorf("handshake: %w", err)
	}
	buf := make([]byte, int(n[0])+sha256.Size)
	if _, err := io.ReadFull(c, buf); err != nil {
		return "", fmt.Errorf("handshake: %w", err)
	}
	name, got := string(buf[:n[0]]), buf[n[0]:]
	if !hmac.Equal(got, m.mac("client", nonce[:], name)) {
		return name, fmt.Errorf("node %q does not hold this cluster's secret", name)
	}
	if _, err := c.Write(m.mac("server", nonce[:], name)); err != nil {
		return name, fmt.Errorf("handshake: %w", err)
	}
	return name, nil
}

// dialHandshake is acceptHandshake's other side.
func (m *Mux) dialHandshake(c net.Conn) error {
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	defer func() { _ = c.SetDeadline(time.Time{}) }()
	var hello [len(magic) + 32]byte
	if _, err := io.ReadFull(c, hello[:]); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if [5]byte(hello[:5]) != magic {
		return errors.New("handshake: not a Warren cluster listener (or another version)")
	}
	nonce, name := hello[5:], m.cfg.Node
	if len(name) > 255 {
		return fmt.Errorf("node name of %d bytes (at most 255)", len(name))
	}
	msg := append([]byte{byte(len(name))}, name...)
	if _, err := c.Write(append(msg, m.mac("client", nonce, name)...)); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	var ans [sha256.Size]byte
	if _, err := io.ReadFull(c, ans[:]); err != nil {
		return fmt.Errorf("handshake: the peer refused us (different cluster secret?): %w", err)
	}
	if !hmac.Equal(ans[:], m.mac("server", nonce, name)) {
		return errors.New("handshake: the peer does not hold this cluster's secret")
	}
	return nil
}

// session returns the outgoing session to addr, dialing it if there is none.
func (m *Mux) session(addr string, timeout time.Duration) (*yamux.Session, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, ErrClosed
	}
	if s := m.sessions[addr]; s != nil && !s.IsClosed() {
		m.mu.Unlock()
		return s, nil
	}
	dl := m.dialing[addr]
	if dl == nil {
		dl = &sync.Mutex{}
		m.dialing[addr] = dl
	}
	m.mu.Unlock()
	dl.Lock()
	defer dl.Unlock()
	m.mu.Lock()
	if s := m.sessions[addr]; s != nil && !s.IsClosed() {
		m.mu.Unlock()
		return s, nil
	}
	m.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := m.cfg.Dial(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("cluster peer %s: %w", addr, err)
	}
	if err := m.dialHandshake(c); err != nil {
		_ = c.Close()
		m.log.Warn().Err(err).Str("peer", addr).Msg("cluster connection refused")
		return nil, fmt.Errorf("cluster peer %s: %w", addr, err)
	}
	s, err := yamux.Client(c, yamuxConfig())
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("cluster peer %s: %w", addr, err)
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		_ = s.Close()
		return nil, ErrClosed
	}
	m.sessions[addr] = s
	m.mu.Unlock()
	return s, nil
}

// Layer returns group's stream layer, for raft.NewNetworkTransportWithConfig; a group has one
// layer at a time (Close frees it).
func (m *Mux) Layer(group uint64) (*Layer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	if m.layers[group] != nil {
		return nil, fmt.Errorf("raftmux: group %d already has a layer", group)
	}
	l := &Layer{m: m, group: group, accept: make(chan net.Conn, 16), done: make(chan struct{})}
	m.layers[group] = l
	return l, nil
}

// Layer is one group's raft.StreamLayer.
type Layer struct {
	m      *Mux
	group  uint64
	accept chan net.Conn
	once   sync.Once
	done   chan struct{}
}

var _ raft.StreamLayer = (*Layer)(nil)

// offer hands an incoming stream to the layer; false if the layer is closed or its backlog
// stays full for a second.
func (l *Layer) offer(c net.Conn) bool {
	select {
	case l.accept <- c:
		return true
	case <-l.done:
		return false
	case <-time.After(time.Second):
		return false
	}
}

// Accept implements net.Listener.
func (l *Layer) Accept() (net.Conn, error) {
	select {
	case c := <-l.accept:
		return c, nil
	case <-l.done:
		return nil, ErrClosed
	}
}

// Close implements net.Listener: the group gets no more streams.
func (l *Layer) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.m.mu.Lock()
		if l.m.layers[l.group] == l {
			delete(l.m.layers, l.group)
		}
		l.m.mu.Unlock()
	})
	return nil
}

// Addr implements net.Listener: the node's advertised address.
func (l *Layer) Addr() net.Addr { return addr(l.m.cfg.Advertise) }

// Dial implements raft.StreamLayer: a new stream to the same group on the node at address.
func (l *Layer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	s, err := l.m.session(string(address), timeout)
	if err != nil {
		return nil, err
	}
	st, err := s.Open()
	if err != nil {
		return nil, fmt.Errorf("cluster peer %s: %w", address, err)
	}
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], l.group)
	if _, err := st.Write(hdr[:]); err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("cluster peer %s: %w", address, err)
	}
	return st, nil
}

// addr is a host:port as a net.Addr.
type addr string

func (a addr) Network() string { return "tcp" }
func (a addr) String() string  { return string(a) }
