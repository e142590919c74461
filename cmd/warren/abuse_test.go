package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/server"
)

// brokerLog collects every log line of a broker process without ever blocking it, and lets a
// test wait for a line.
type brokerLog struct {
	mu     sync.Mutex
	lines  []string
	more   chan struct{} // closed and replaced when a line arrives or the process exits
	exited bool
}

// waitFor returns the first line containing substr, waiting up to 30 s for it; it fails the
// test when the process exits first.
func (l *brokerLog) waitFor(t *testing.T, substr string) string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	seen := 0
	for {
		l.mu.Lock()
		for ; seen < len(l.lines); seen++ {
			if strings.Contains(l.lines[seen], substr) {
				line := l.lines[seen]
				l.mu.Unlock()
				return line
			}
		}
		exited, more := l.exited, l.more
		l.mu.Unlock()
		if exited {
			t.Fatalf("broker exited before logging %q; last lines:\n%s", substr, l.tail(10))
		}
		select {
		case <-more:
		case <-deadline:
			t.Fatalf("no %q log line within 30s; last lines:\n%s", substr, l.tail(10))
		}
	}
}

// matching returns every line containing substr so far.
func (l *brokerLog) matching(substr string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, s := range l.lines {
		if strings.Contains(s, substr) {
			out = append(out, s)
		}
	}
	return out
}

func (l *brokerLog) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines[max(0, len(l.lines)-n):], "\n")
}

// crashReport is the start of a Go crash report in the log (the fatal error or panic and the
// first goroutine's stack), or its last lines when there is none.
func (l *brokerLog) crashReport() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, s := range l.lines {
		if strings.HasPrefix(s, "fatal error:") || strings.HasPrefix(s, "panic:") || strings.HasPrefix(s, "unexpected fault") {
			return strings.Join(l.lines[i:min(len(l.lines), i+40)], "\n")
		}
	}
	return strings.Join(l.lines[max(0, len(l.lines)-20):], "\n")
}

func (l *brokerLog) alive() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.exited
}

// startBrokerWith runs the real binary on a free port with a fresh data dir, with extra flags,
// under a shell prefix (such as a lower descriptor limit) when shell is not empty; it returns
// once the broker listens. The broker is killed when the test ends.
func startBrokerWith(t *testing.T, shell string, flags ...string) (string, *brokerLog) {
	t.Helper()
	addr, l, _ := startBrokerBin(t, buildBinary(t), shell, flags...)
	return addr, l
}

// startBrokerBin is startBrokerWith for a binary already built; it also returns the process.
// A --data-dir in flags replaces the fresh one.
func startBrokerBin(t *testing.T, bin, shell string, flags ...string) (string, *brokerLog, *exec.Cmd) {
	t.Helper()
	addr := freeAddr(t)
	args := append([]string{bin, "--listen", addr, "--prometheus-listen", "127.0.0.1:0", "--management-listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--log-level", "info"}, flags...)
	var cmd *exec.Cmd
	if shell != "" {
		// exec keeps the broker's PID the shell's, so Kill reaches it.
		cmd = exec.Command("/bin/sh", append([]string{"-c", shell + ` && exec "$0" "$@"`}, args...)...)
	} else {
		cmd = exec.Command(args[0], args[1:]...)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l := &brokerLog{more: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			l.mu.Lock()
			l.lines = append(l.lines, sc.Text())
			close(l.more)
			l.more = make(chan struct{})
			l.mu.Unlock()
		}
		_ = cmd.Wait()
		l.mu.Lock()
		l.exited = true
		close(l.more)
		l.more = make(chan struct{})
		l.mu.Unlock()
	}()
	t.Cleanup(func() {
		// Wait for the exit too: a test may unmount the broker's data dir next.
		_ = cmd.Process.Kill()
		for deadline := time.Now().Add(10 * time.Second); l.alive() && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
	})
	l.waitFor(t, "listening for AMQP 0-9-1")
	return addr, l, cmd
}

// idleSockets opens n TCP connections to addr that never send a byte.
func idleSockets(t *testing.T, addr string, log *brokerLog, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			_ = c.Close()
		}
	})
	for range n {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Fatalf("idle socket %d: %v (broker alive: %v); last lines:\n%s", len(conns), err, log.alive(), log.tail(10))
		}
		conns = append(conns, c)
	}
	return conns
}

// useBroker dials addr with amqp091-go and round-trips a message through a server-named queue.
func useBroker(t *testing.T, addr string) {
	t.Helper()
	conn, err := amqp.DialConfig("amqp://guest:guest@"+addr+"/", amqp.Config{
		Dial: func(network, a string) (net.Conn, error) { return net.DialTimeout(network, a, 10*time.Second) },
	})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("channel: %v", err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatalf("declare: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ch.PublishWithContext(ctx, "", q.Name, false, false, amqp.Publishing{Body: []byte("hello")}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	for {
		d, ok, err := ch.Get(q.Name, true)
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		if ok {
			if string(d.Body) != "hello" {
				t.Fatalf("got %q, want hello", d.Body)
			}
			return
		}
		if ctx.Err() != nil {
			t.Fatal("the published message never arrived")
		}
	}
}

// TestOutOfDescriptorsKeepsServing: a broker limited to 256 file descriptors gets 400 idle TCP
// connections, so accept fails with EMFILE. It must stay up, log the failures in summary rather
// than once each, and serve a normal client, and the control socket (which a command also
// tried while no descriptor was free), once the idle sockets close.
func TestOutOfDescriptorsKeepsServing(t *testing.T) {
	const fds, idle = 256, 400
	dataDir := t.TempDir()
	addr, log := startBrokerWith(t, fmt.Sprintf("ulimit -n %d", fds), "--data-dir", dataDir)
	conns := idleSockets(t, addr, log, idle)
	log.waitFor(t, "too many open files")
	control := make(chan error, 1)
	go func() {
		_, err := server.ControlRequest(filepath.Join(dataDir, "warren.sock"), server.ControlExport, 30*time.Second)
		control <- err
	}()
	// Let the broker retry for a while with every descriptor taken.
	deadline := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(deadline) && log.alive() {
		time.Sleep(50 * time.Millisecond)
	}
	if !log.alive() {
		t.Fatalf("broker exited while out of descriptors; last lines:\n%s", log.tail(10))
	}
	if n := len(log.matching("accept")); n > 5 {
		t.Errorf("%d log lines about failed accepts in 1.5 s, want a summary:\n%s", n, strings.Join(log.matching("accept"), "\n"))
	}
	for _, c := range conns {
		_ = c.Close()
	}
	useBroker(t, addr)
	log.waitFor(t, "accepting connections again")
	if err := <-control; err != nil {
		t.Errorf("control command sent while out of descriptors: %v", err)
	}
}

// TestMaxConnectionsCountsIdleSockets: --max-connections counts sockets from accept. With the
// limit taken by idle sockets that never send a byte, further idle sockets are disconnected at
// within seconds (not after the handshake timeout) while the first ones stay, a real client is told why
// with RabbitMQ's 530 text, and a freed slot is usable again.
func TestMaxConnectionsCountsIdleSockets(t *testing.T) {
	const limit, extra = 3, 20
	addr, log := startBrokerWith(t, "", "--max-connections", fmt.Sprint(limit))
	first := idleSockets(t, addr, log, limit)
	// Make sure the broker has accepted the first sockets before the extra ones race them for
	// the slots: each gets as far as connection.start, then goes quiet.
	for i, c := range first {
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Write(amqpwire.ProtocolHeader); err != nil {
			t.Fatal(err)
		}
		if _, err := amqpwire.NewFrameReader(c, 1<<20).ReadFrame(); err != nil {
			t.Fatalf("socket %d within the limit: no connection.start: %v", i, err)
		}
	}
	over := idleSockets(t, addr, log, extra)
	for i, c := range over {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
			t.Fatalf("idle socket %d over the limit: read %d bytes, %v; want the broker to close it", i, n, err)
		}
	}
	for i, c := range first {
		_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		var ne net.Error
		if _, err := c.Read(make([]byte, 1)); !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("idle socket %d within the limit: %v, want it still open", i, err)
		}
	}

	_, err := amqp.Dial("amqp://guest:guest@" + addr + "/")
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != 530 || ae.Reason != fmt.Sprintf("NOT_ALLOWED - connection refused: node connection limit (%d) is reached", limit) {
		t.Fatalf("client over the limit: %v, want 530 with RabbitMQ's text", err)
	}
	if n := len(log.matching("connection limit reached")); n > 2 {
		t.Errorf("%d log lines for %d refusals, want the first and then a summary", n, extra+1)
	}

	_ = first[0].Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := amqp.Dial("amqp://guest:guest@" + addr + "/")
		if err == nil {
			_ = c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a slot freed by closing an idle socket is still refused: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHandshakeTimeoutBoundsEveryStage: with --handshake-timeout 1s, a socket that sends
// nothing, one that stops in the middle of a frame and one that keeps sending heartbeats but
// never gets to connection.open are all closed by the broker about a second after they
// connected (the default timeout is 10 s), and the failures are logged in summary.
func TestHandshakeTimeoutBoundsEveryStage(t *testing.T) {
	addr, log := startBrokerWith(t, "", "--handshake-timeout", "1s")
	start := func(t *testing.T, c net.Conn) {
		if _, err := c.Write(amqpwire.ProtocolHeader); err != nil {
			t.Fatal(err)
		}
		if _, err := amqpwire.NewFrameReader(c, 1<<20).ReadFrame(); err != nil {
			t.Fatalf("no connection.start: %v", err)
		}
	}
	for _, tc := range []struct {
		name string
		act  func(t *testing.T, c net.Conn, stop <-chan struct{})
	}{
		{"silent", func(*testing.T, net.Conn, <-chan struct{}) {}},
		{"half a protocol header", func(t *testing.T, c net.Conn, _ <-chan struct{}) {
			_, _ = c.Write(amqpwire.ProtocolHeader[:4])
		}},
		{"half a frame", func(t *testing.T, c net.Conn, _ <-chan struct{}) {
			start(t, c)
			_, _ = c.Write([]byte{amqpwire.FrameMethod, 0, 0, 0, 0, 1, 0})
		}},
		{"heartbeats only", func(t *testing.T, c net.Conn, stop <-chan struct{}) {
			start(t, c)
			go func() {
				tick := time.NewTicker(100 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						if _, err := c.Write([]byte{amqpwire.FrameHeartbeat, 0, 0, 0, 0, 0, 0, amqpwire.FrameEnd}); err != nil {
							return
						}
					}
				}
			}()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			began := time.Now()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			stop := make(chan struct{})
			defer close(stop)
			tc.act(t, c, stop)
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
			// A close with unread heartbeats in the broker's buffer arrives as a reset.
			if _, err := io.Copy(io.Discard, c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("waiting for the broker to close the socket: %v", err)
			}
			if d := time.Since(began); d < 900*time.Millisecond || d > 8*time.Second {
				t.Errorf("closed %v after connecting, want about 1 s (the handshake timeout)", d)
			}
		})
	}
	t.Cleanup(func() {
		log.waitFor(t, "handshake failed")
		if n := len(log.matching("handshake failed")); n != 1 {
			t.Errorf("%d 'handshake failed' lines for 4 timeouts from one address, want 1 then a summary", n)
		}
	})
}
