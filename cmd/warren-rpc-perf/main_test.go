package main

import (
	"context"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/server"
)

// TestRun runs a short benchmark against an in-memory Warren: every caller gets its own replies
// (a reply for another request fails the run) and the summary counts them.
func TestRun(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{})
	go func() { _ = srv.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	url := "amqp://guest:guest@" + ln.Addr().String() + "/"
	for _, client := range []string{"amqp091", "lean"} {
		c, err := parseConfig(strings.Fields("--url "+url+" --client "+client+" --callers 3 --servers 2 --warmup 0s --duration 300ms --broker-pid "+strconv.Itoa(os.Getpid())), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		s, err := run(ctx, c)
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", client, err)
		}
		// The broker runs in this process, so its CPU time is this process's.
		if s.RoundTrips == 0 || s.Rate <= 0 || s.P50us <= 0 || s.P99us < s.P50us || s.Callers != 3 || s.Servers != 2 || s.BrokerCPUPer <= 0 || s.Client != client {
			t.Errorf("%s: summary = %+v, want round trips counted", client, s)
		}
	}
}

func TestParseConfigRefuses(t *testing.T) {
	for _, args := range []string{"--callers 0", "--servers 0", "--duration 0s", "--size -1", "--client pika", "extra"} {
		if _, err := parseConfig(strings.Fields(args), io.Discard); err == nil {
			t.Errorf("parseConfig(%q) accepted it", args)
		}
	}
}

func TestParseStatCPU(t *testing.T) {
	// A command name with spaces and parentheses; utime 250 and stime 50 ticks.
	stat := "4242 (beam (smp) x) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 30 0 100"
	got, err := parseStatCPU(stat)
	if err != nil || got != 3*time.Second {
		t.Errorf("parseStatCPU = %v, %v; want 3s", got, err)
	}
	if _, err := parseStatCPU("4242 (x) S 1 2"); err == nil {
		t.Error("a short line was accepted")
	}
}
