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

// startBroker serves an in-memory Warren on a loopback port for the end-to-end tests.
func startBroker(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{})
	go srv.Serve(context.Background(), ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return "amqp://guest:guest@" + ln.Addr().String() + "/"
}

func runArgs(t *testing.T, args string) *summary {
	t.Helper()
	c, err := parseConfig(strings.Fields(args), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := run(ctx, c, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRunFillThenDrain(t *testing.T) {
	url := startBroker(t)
	pid := os.Getpid() // stands in for the broker's PID: the broker runs in this process
	fill := runArgs(t, "--url "+url+" --producers 2 --consumers 0 --queue-pattern fill --persistent --confirm 16 --pmessages 500 --interval 0 --broker-pid "+strconv.Itoa(pid))
	if fill.Published != 1000 || fill.Confirmed != 1000 || fill.Nacked != 0 || fill.ConfirmRate <= 0 {
		t.Fatalf("fill: %+v", fill)
	}
	if fill.Broker == nil || fill.Broker.VmHWM <= 0 {
		t.Fatalf("fill: no broker figures: %+v", fill.Broker)
	}
	drain := runArgs(t, "--url "+url+" --producers 0 --consumers 1 --queue-pattern fill --prefetch 100 --multi-ack 10 --cmessages 1000 --interval 0 --delete-queues")
	if drain.Consumed != 1000 || drain.Latency == nil || drain.Latency.Count != 1000 || drain.Latency.P50 <= 0 {
		t.Fatalf("drain: %+v %+v", drain, drain.Latency)
	}
}

func TestRunTopicExchangeFanOut(t *testing.T) {
	url := startBroker(t)
	// Two queues bound with t.* both get every message published with t.{word}.
	s := runArgs(t, "--url "+url+" --producers 1 --consumers 2 --queues 2 --queue-pattern tq-%d --exchange tx --exchange-type topic --routing-key t.{word} --rate 2000 --duration 1s --interval 0 --autoack --delete-queues")
	// The last few deliveries may still be on their way when the run ends.
	if s.Published == 0 || s.Consumed < 2*s.Published*9/10 {
		t.Fatalf("published %d, consumed %d: want about twice as many consumed", s.Published, s.Consumed)
	}
	if s.PublishRate > 2200 {
		t.Fatalf("rate %v exceeds --rate 2000", s.PublishRate)
	}
}

func TestRunReportsChannelErrors(t *testing.T) {
	url := startBroker(t)
	c, err := parseConfig(strings.Fields("--url "+url+" --producers 1 --consumers 0 --queue-pattern missing --predeclared --confirm 1 --pmessages 10 --interval 0 --exchange nosuch"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := run(ctx, c, io.Discard); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("publishing to a missing exchange: err %v, want a 404", err)
	}
}
