package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/amqpwire"
)

// buildBinary compiles cmd/warren into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "warren")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	// A port the kernel hands out for ":0" is an ephemeral one, which any outgoing connection
	// of the tests running beside this one may take as its source port before the broker
	// binds it (CI saw a broker exit with "address already in use"). Ports below Linux's
	// ephemeral range (32768-60999) are only ever taken on purpose.
	for range 200 {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000)))
		if err != nil {
			continue
		}
		addr := ln.Addr().String()
		_ = ln.Close()
		return addr
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// startBroker runs the real binary on a free port with a fresh data dir and returns it once it
// listens, with its log lines (JSON, since stderr is not a terminal).
func startBroker(t *testing.T, extraArgs ...string) (*exec.Cmd, string, chan string) {
	t.Helper()
	bin := buildBinary(t)
	addr := freeAddr(t)
	args := append([]string{"--listen", addr, "--prometheus-listen", "127.0.0.1:0", "--management-listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--log-level", "info"}, extraArgs...)
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	waitForLine(t, lines, "listening for AMQP 0-9-1")
	return cmd, addr, lines
}

// exited drains the broker's remaining log lines and reports its exit.
func exited(cmd *exec.Cmd, lines <-chan string) <-chan error {
	go func() {
		for range lines {
		}
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return done
}

// TestSIGTERMClosesConnectionsWith320 runs the real binary, connects a client, sends SIGTERM and
// expects connection.close 320 CONNECTION_FORCED at the client and a clean exit (status 0).
func TestSIGTERMClosesConnectionsWith320(t *testing.T) {
	cmd, addr, lines := startBroker(t)

	conn, err := amqp.Dial("amqp://guest:guest@" + addr + "/")
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-closed:
		if e == nil || e.Code != amqp.ConnectionForced || !strings.HasPrefix(e.Reason, "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'") {
			t.Errorf("close = %v, want 320 CONNECTION_FORCED with reason 'shutdown'", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no connection.close within 10s of SIGTERM")
	}
	done := exited(cmd, lines)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("broker exit: %v, want status 0", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("broker still running 15s after SIGTERM")
	}
}

func waitForLine(t *testing.T, lines <-chan string, substr string) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	var last []string
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("broker exited before logging %q; its last lines:\n%s", substr, strings.Join(last, "\n"))
			}
			if strings.Contains(l, substr) {
				return
			}
			if last = append(last, l); len(last) > 20 {
				last = last[1:]
			}
		case <-deadline:
			t.Fatalf("no %q log line within 30s", substr)
		}
	}
}

// TestBadFlagsFail: an unknown log level or an unusable listen address is an error, not a
// half-started broker.
func TestBadFlagsFail(t *testing.T) {
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	dir := filepath.Join(t.TempDir(), "data")
	for _, args := range [][]string{
		{"--log-level", "loud", "--data-dir", dir},
		{"--listen", "127.0.0.1:99999", "--data-dir", dir},
		{"--no-such-flag"},
	} {
		if err := run(args, devnull); err == nil {
			t.Errorf("run(%v) succeeded, want an error", args)
		}
	}
	if err := run([]string{"--log-level", "loud"}, devnull); err == nil || !strings.Contains(err.Error(), "--log-level") {
		t.Errorf("error %v does not name the flag", err)
	}
	if err := run([]string{"--listen", "127.0.0.1:99999", "--data-dir", dir}, devnull); err == nil || !strings.Contains(err.Error(), "listen on 127.0.0.1:99999") {
		t.Errorf("error %v does not name the address", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("a failed start left the data dir behind (stat: %v)", err)
	}
}

// TestSecondSignalStopsAHungShutdown: while a shutdown waits (here for a client that never
// answers connection.close, which holds it for the close-ok timeout), a second SIGTERM ends
// the process at once instead of being swallowed.
func TestSecondSignalStopsAHungShutdown(t *testing.T) {
	cmd, addr, lines := startBroker(t)

	// A client that opens a connection and then reads and answers nothing.
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var hs bytes.Buffer
	hs.Write(amqpwire.ProtocolHeader)
	fw := amqpwire.NewFrameWriter(&hs)
	fw.WriteMethod(0, &amqpwire.ConnectionStartOk{Mechanism: "PLAIN", Response: "\x00guest\x00guest", Locale: "en_US"})
	fw.WriteMethod(0, &amqpwire.ConnectionTuneOk{ChannelMax: 16, FrameMax: 4096})
	fw.WriteMethod(0, &amqpwire.ConnectionOpen{VirtualHost: "/"})
	if err := fw.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write(hs.Bytes()); err != nil {
		t.Fatal(err)
	}
	waitForLine(t, lines, "connection opened")

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitForLine(t, lines, "signal received, shutting down")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := exited(cmd, lines)
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("broker exit: %v, want killed by the second SIGTERM", err)
		}
		ws, ok := ee.Sys().(syscall.WaitStatus)
		if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
			t.Errorf("broker exit: %v, want killed by the second SIGTERM", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("broker still running 15s after the second SIGTERM")
	}
}
