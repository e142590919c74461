package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/server/servertest"
)

// startBroker serves an in-memory Warren on a loopback port for the end-to-end tests.
func startBroker(t *testing.T) string {
	t.Helper()
	return servertest.URL(servertest.Serve(t, servertest.New(t, server.Config{})))
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
	if fill.Broker == nil || fill.Broker.VmHWM <= 0 || fill.Broker.DiskWrite == nil || *fill.Broker.DiskWrite < 0 || fill.Broker.DiskPerMsg == nil {
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
	// --idle-exit: the run ends once the consumers have had nothing for 500 ms, so every
	// delivery is counted however slowly a loaded machine runs them.
	s := runArgs(t, "--url "+url+" --producers 1 --consumers 2 --queues 2 --queue-pattern tq-%d --exchange tx --exchange-type topic --routing-key t.{word} --rate 2000 --pmessages 1000 --idle-exit 500ms --interval 0 --autoack --delete-queues")
	if s.Published != 1000 || s.Consumed != 2*s.Published {
		t.Fatalf("published %d, consumed %d: want every message in both queues", s.Published, s.Consumed)
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

func TestRunIdleConnections(t *testing.T) {
	url := startBroker(t)
	pid := strconv.Itoa(os.Getpid())
	s := runArgs(t, "--url "+url+" --idle-connections 200 --duration 500ms --interval 0 --reset-hwm --broker-pid "+pid)
	d := s.Idle
	if d == nil {
		t.Fatal("no idle_connections in the summary")
	}
	if d.Requested != 200 || d.Opened != 200 || d.Failed != 0 || d.StillOpen != 200 || d.FirstError != "" {
		t.Fatalf("idle: %+v", d)
	}
	if d.OpenTime <= 0 || d.Heartbeat != 60 || d.ClientRSS <= 0 {
		t.Fatalf("idle: open %v s, heartbeat %v s (want the broker's 60), client rss %v", d.OpenTime, d.Heartbeat, d.ClientRSS)
	}
	if b := d.Broker; b == nil || b.RSSBefore <= 0 || b.RSSAfterOpen <= 0 || b.RSSEnd <= 0 || b.HWMBefore <= 0 || b.HWMEnd <= 0 || b.FDLimit <= 0 {
		t.Fatalf("idle broker figures: %+v", d.Broker)
	}
	if s.Producers != 0 || s.Consumers != 0 || s.Published != 0 {
		t.Fatalf("an idle run published: %+v", s)
	}
	if s.Broker == nil || !s.Broker.HWMReset || s.Elapsed < 0.5 {
		t.Fatalf("broker %+v, elapsed %v: want a reset VmHWM and the connections held for --duration", s.Broker, s.Elapsed)
	}
	var buf strings.Builder
	if err := s.writeJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(buf.String()), &m); err != nil {
		t.Fatal(err)
	}
	idle, _ := m["idle_connections"].(map[string]any)
	broker, _ := idle["broker"].(map[string]any)
	for _, k := range []string{"rss_before_mib", "rss_after_open_mib", "rss_end_mib", "vmhwm_before_mib", "vmhwm_end_mib", "kib_per_connection"} {
		if _, ok := broker[k]; !ok {
			t.Errorf("JSON idle_connections.broker has no %s: %s", k, buf.String())
		}
	}
	if idle["opened"] != float64(200) {
		t.Errorf("JSON opened %v", idle["opened"])
	}
}

func TestRunIdleConnectionsReportsFailures(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: every dial is refused
	c, err := parseConfig(strings.Fields("--url amqp://guest:guest@"+addr+"/ --idle-connections 5 --interval 0"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := run(ctx, c, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "5 of 5 idle connections failed") {
		t.Fatalf("err %v", err)
	}
	if s == nil || s.Idle == nil || s.Idle.Opened != 0 || s.Idle.Failed != 5 || !strings.Contains(s.Idle.FirstError, "refused") {
		t.Fatalf("summary %+v", s.Idle)
	}
}

func TestRunTopicBindings(t *testing.T) {
	url := startBroker(t)
	// 10,000 keys over two queues; each message matches exactly one binding, so the two
	// consumers together get each message once.
	s := runArgs(t, "--url "+url+" --exchange-type topic --topic-bindings 10000 --queues 2 --queue-pattern tb-%d --producers 1 --consumers 2 --pmessages 3000 --idle-exit 500ms --autoack --interval 0 --delete-queues")
	if s.Exchange != "warren-perf-topic" || s.TopicBindings != 10000 || s.BindTime <= 0 {
		t.Fatalf("exchange %q, %d bindings in %v s", s.Exchange, s.TopicBindings, s.BindTime)
	}
	if s.BindTime > 10 {
		t.Errorf("binding 10,000 keys took %.1f s", s.BindTime)
	}
	if s.Published != 3000 || s.Consumed != 3000 {
		t.Fatalf("published %d, consumed %d: want each message delivered exactly once", s.Published, s.Consumed)
	}
}

func TestRunFanoutToEightQueues(t *testing.T) {
	url := startBroker(t)
	pid := strconv.Itoa(os.Getpid())
	// No --exchange: a fanout run still goes through an exchange of its own, not the default one.
	s := runArgs(t, "--url "+url+" --exchange-type fanout --queues 8 --queue-pattern fan-%d --consumers 8 --producers 1 --rate 2000 --pmessages 1000 --idle-exit 500ms --autoack --interval 0 --delete-queues --broker-pid "+pid)
	if s.Exchange != "warren-perf-fanout" {
		t.Fatalf("exchange %q", s.Exchange)
	}
	if s.Published != 1000 || s.Consumed != 8*1000 {
		t.Fatalf("published %d, consumed %d: want every message in all 8 queues", s.Published, s.Consumed)
	}
	// The consume rate and the broker's messages per core-second count every delivery: at
	// a paced 2,000 msg/s the consumers together get up to 16,000 a second, less when they
	// lag behind the publisher on a busy machine; a rate counting messages instead of
	// deliveries could not exceed the publish rate, since consuming ends after publishing.
	if s.ConsumeRate <= s.PublishRate {
		t.Fatalf("consume rate %.0f, publish rate %.0f", s.ConsumeRate, s.PublishRate)
	}
	if s.Broker == nil || s.Broker.CPU > 0 && s.Broker.MsgsPerCore != float64(s.Consumed)/s.Broker.CPU {
		t.Fatalf("broker %+v", s.Broker)
	}
}
