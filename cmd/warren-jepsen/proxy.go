package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// helloLen is what a Warren cluster listener sends first (raftmux's acceptHandshake): 5
// magic bytes and a 32-byte nonce. The dialer answers with one length byte and its node name.
const helloLen = 5 + 32

// peekTimeout bounds the handshake bytes the proxy reads to learn who dialed.
const peekTimeout = 10 * time.Second

// network is the TCP proxies in front of every node's cluster port: the nodes dial each
// other through them (their --cluster-peers name the proxies), so the nemesis can cut a
// running node off from the others: every connection to or from it is dropped and every new
// one refused until heal.
type network struct {
	log zerolog.Logger

	mu      sync.Mutex
	closed  bool
	cut     map[string]bool
	links   map[*link]struct{}
	ln      []net.Listener
	refused int
	wg      sync.WaitGroup
}

// link is one proxied connection: from dialed to through the proxy.
type link struct {
	from, to         string
	client, upstream net.Conn
}

func newNetwork(log zerolog.Logger) *network {
	return &network{log: log.With().Str("component", "proxy").Logger(), cut: map[string]bool{}, links: map[*link]struct{}{}}
}

// listen starts the proxy of node, whose cluster listener is upstream, and returns the
// proxy's address (the one the other nodes dial).
func (n *network) listen(node, upstream string) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("proxy for %s: %w", node, err)
	}
	n.mu.Lock()
	n.ln = append(n.ln, ln)
	n.mu.Unlock()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				n.serve(node, upstream, c)
			}()
		}
	}()
	return ln.Addr().String(), nil
}

// partition cuts node off: its connections are dropped and new ones refused.
func (n *network) partition(node string) {
	n.mu.Lock()
	n.cut[node] = true
	var drop []*link
	for l := range n.links {
		if l.from == node || l.to == node {
			drop = append(drop, l)
		}
	}
	n.mu.Unlock()
	for _, l := range drop {
		_ = l.client.Close()
		_ = l.upstream.Close()
	}
	n.log.Info().Str("node", node).Int("dropped", len(drop)).Msg("partition: node cut off")
}

// heal lets every connection through again.
func (n *network) heal() {
	n.mu.Lock()
	n.cut = map[string]bool{}
	n.mu.Unlock()
	n.log.Info().Msg("partition healed")
}

// connected lists the proxied connections as "from->to", sorted.
func (n *network) connected() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for l := range n.links {
		out = append(out, l.from+"->"+l.to)
	}
	sort.Strings(out)
	return out
}

// refusedCount is how many connections a partition refused.
func (n *network) refusedCount() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.refused
}

// close stops every proxy and drops every connection.
func (n *network) close() {
	n.mu.Lock()
	n.closed = true
	lns := n.ln
	var drop []*link
	for l := range n.links {
		drop = append(drop, l)
	}
	n.mu.Unlock()
	for _, ln := range lns {
		_ = ln.Close()
	}
	for _, l := range drop {
		_ = l.client.Close()
		_ = l.upstream.Close()
	}
	n.wg.Wait()
}

func (n *network) isCut(node string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cut[node] || n.closed
}

func (n *network) refuse(from, to string, c ...net.Conn) {
	n.mu.Lock()
	n.refused++
	n.mu.Unlock()
	for _, x := range c {
		if x != nil {
			_ = x.Close()
		}
	}
	n.log.Debug().Str("from", from).Str("to", to).Msg("partition: connection refused")
}

// serve proxies one connection to node's cluster listener at upstream: it relays the
// listener's hello, reads the dialer's name from its answer, and refuses the connection when
// either end is cut off.
func (n *network) serve(node, upstream string, c net.Conn) {
	if n.isCut(node) {
		n.refuse("?", node, c)
		return
	}
	up, err := net.DialTimeout("tcp", upstream, 3*time.Second)
	if err != nil {
		n.log.Debug().Err(err).Str("to", node).Msg("proxy: node unreachable")
		_ = c.Close()
		return
	}
	from, err := peek(c, up)
	if err != nil {
		n.log.Debug().Err(err).Str("to", node).Msg("proxy: handshake")
		_ = c.Close()
		_ = up.Close()
		return
	}
	l := &link{from: from, to: node, client: c, upstream: up}
	n.mu.Lock()
	if n.closed || n.cut[from] || n.cut[node] {
		n.mu.Unlock()
		n.refuse(from, node, c, up)
		return
	}
	n.links[l] = struct{}{}
	n.mu.Unlock()

	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		_ = dst.Close()
		_ = src.Close()
		done <- struct{}{}
	}
	go pipe(up, c)
	pipe(c, up)
	<-done
	n.mu.Lock()
	delete(n.links, l)
	n.mu.Unlock()
}

// peek relays the start of raftmux's handshake between the dialer c and the listener up and
// returns the dialer's node name.
func peek(c, up net.Conn) (string, error) {
	deadline := time.Now().Add(peekTimeout)
	_ = c.SetDeadline(deadline)
	_ = up.SetDeadline(deadline)
	defer func() {
		_ = c.SetDeadline(time.Time{})
		_ = up.SetDeadline(time.Time{})
	}()
	var hello [helloLen]byte
	if _, err := io.ReadFull(up, hello[:]); err != nil {
		return "", fmt.Errorf("reading the listener's hello: %w", err)
	}
	if _, err := c.Write(hello[:]); err != nil {
		return "", fmt.Errorf("relaying the hello: %w", err)
	}
	var size [1]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		return "", fmt.Errorf("reading the dialer's name: %w", err)
	}
	name := make([]byte, int(size[0]))
	if _, err := io.ReadFull(c, name); err != nil {
		return "", fmt.Errorf("reading the dialer's name: %w", err)
	}
	if len(name) == 0 {
		return "", errors.New("the dialer sent an empty node name")
	}
	if _, err := up.Write(append(size[:], name...)); err != nil {
		return "", fmt.Errorf("relaying the dialer's name: %w", err)
	}
	return string(name), nil
}
