package main

import (
	"bytes"
	"io"
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/server/cluster/raftmux"
)

// echoNode is a real cluster transport (raftmux) whose group 7 echoes every stream; its
// layer also dials the other nodes' group 7.
func echoNode(t *testing.T, name string) (*raftmux.Mux, *raftmux.Layer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := raftmux.New(raftmux.Config{Listener: ln, Node: name, Secret: []byte("jepsen-test-secret"), Logger: zerolog.Nop()})
	t.Cleanup(func() { _ = m.Close() })
	l, err := m.Layer(7)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				_, _ = io.Copy(c, c)
				_ = c.Close()
			}()
		}
	}()
	return m, l
}

// echo opens a group-7 stream from layer to addr and checks a round trip; it returns the
// open stream.
func echo(layer *raftmux.Layer, addr string) (net.Conn, error) {
	c, err := layer.Dial(raft.ServerAddress(addr), 5*time.Second)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		_ = c.Close()
		return nil, err
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil {
		_ = c.Close()
		return nil, err
	}
	if !bytes.Equal(got, []byte("ping")) {
		_ = c.Close()
		return nil, io.ErrUnexpectedEOF
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// TestProxyPartitionAndHeal: two real cluster transports, n2 behind the proxy. The proxy
// learns from the handshake that n1 dialed; cutting n1 off drops the established connection
// and refuses the next one (the handshake fails); after heal, n1 gets through again. Cutting
// off the node behind the proxy refuses connections to it too.
func TestProxyPartitionAndHeal(t *testing.T) {
	net1 := newNetwork(zerolog.Nop())
	t.Cleanup(net1.close)
	_, layer := echoNode(t, "n1")
	n2, _ := echoNode(t, "n2")
	proxyAddr, err := net1.listen("n2", n2.Addr())
	if err != nil {
		t.Fatal(err)
	}
	st, err := echo(layer, proxyAddr)
	if err != nil {
		t.Fatalf("through the healthy proxy: %v", err)
	}
	if got := net1.connected(); !reflect.DeepEqual(got, []string{"n1->n2"}) {
		t.Fatalf("proxied connections = %v, want [n1->n2] (the dialer's name from the handshake)", got)
	}

	net1.partition("n1")
	_ = st.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := st.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("the established stream survived the partition: read = %v", err)
	}
	if _, err := echo(layer, proxyAddr); err == nil {
		t.Fatal("a new connection from the cut-off node got through")
	}
	if net1.refusedCount() == 0 {
		t.Fatal("the proxy counted no refused connection")
	}

	net1.heal()
	if _, err := echo(layer, proxyAddr); err != nil {
		t.Fatalf("after heal: %v", err)
	}

	net1.partition("n2")
	_ = st.Close()
	waitFor(t, "the connection to the cut-off node to drop", func() bool { return len(net1.connected()) == 0 })
	if _, err := echo(layer, proxyAddr); err == nil {
		t.Fatal("a new connection to the cut-off node got through")
	}
	net1.heal()
	if _, err := echo(layer, proxyAddr); err != nil {
		t.Fatalf("after the second heal: %v", err)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// waitFor polls cond for up to 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
