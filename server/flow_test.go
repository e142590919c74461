package server

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/store"
)

func TestFlowHysteresis(t *testing.T) {
	f := newFlowControl(true, zerolog.Nop())
	for _, step := range []struct {
		busy, self float64
		want       bool
	}{
		{0.50, 1, false}, {0.89, 1, false}, {0.90, 1, true}, {0.80, 1, true}, {0.75, 1, true}, {0.74, 1, false}, {0.85, 1, false}, {1, 1, true},
		// Warren's own share: 0.25 CPUs to start, 0.10 to stay.
		{1, 0.15, true}, {1, 0.10, true}, {1, 0.09, false}, {1, 0.20, false}, {0.95, 0.25, true},
	} {
		f.observe(step.busy, step.self)
		if got := f.saturated.Load(); got != step.want {
			t.Fatalf("after %.2f busy, Warren %.2f CPUs: saturated %v, want %v", step.busy, step.self, got, step.want)
		}
	}
}

// TestFlowIgnoresOtherProcessesLoad: CPUs kept saturated by other processes while Warren
// idles neither pace publishers nor log "CPU saturated", however long it lasts; once Warren is
// busy too, both happen.
func TestFlowIgnoresOtherProcessesLoad(t *testing.T) {
	var logged strings.Builder
	f := newFlowControl(true, zerolog.New(&logged))
	for range 100 { // 25s of samples
		f.observe(1, 0.01)
	}
	if f.saturated.Load() {
		t.Errorf("saturated while Warren used 0.01 CPUs of a saturated host")
	}
	if logged.Len() > 0 {
		t.Errorf("logged while Warren idled on a saturated host:\n%s", logged.String())
	}
	f.observe(1, 1.5)
	if !f.saturated.Load() || !strings.Contains(logged.String(), "CPU saturated") {
		t.Errorf("saturated %v with Warren using 1.5 CPUs of a saturated host, log %q; want saturated and logged", f.saturated.Load(), logged.String())
	}
}

// flowBroker runs a broker with a store and a 16-message window; the CPU sampler is off, so
// the test decides when the host counts as saturated.
func flowBroker(t *testing.T) (*Server, string) {
	t.Helper()
	srv, addr := storeBroker(t, Config{QueueMemory: QueueMemory{Messages: 16, Bytes: 1 << 20}, DisableFlowControl: true}, true)
	return srv, "amqp://guest:guest@" + addr + "/"
}

// storeBroker runs a broker with cfg and a store of its own (synced unless noSync) on a
// loopback port, and returns it with its address.
func storeBroker(t *testing.T, cfg Config, noSync bool) (*Server, string) {
	t.Helper()
	st, err := store.Open(store.Options{Dir: t.TempDir(), NoSync: noSync, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger, cfg.Store = zerolog.Nop(), st
	srv := New(cfg)
	if err := srv.Recover(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		_ = srv.Shutdown(context.Background())
		_ = st.Close()
	})
	return srv, ln.Addr().String()
}

// enqueued is how many messages queue q has taken so far: ready, unacked and acked.
func enqueued(srv *Server, q string, acked int) int {
	for _, info := range srv.vhost("/").Queues() {
		if info.Name == q {
			return info.Ready + info.Unacked + acked
		}
	}
	return acked
}

// While the host is saturated, a publisher to a queue that spills while its consumer takes
// messages gets ahead of that consumer by little more than the window; nothing is lost, and
// once the host has CPU to spare it runs free again. Without saturation the same publisher
// is never held back.
func TestPublisherPacedByConsumersWhileSaturated(t *testing.T) {
	const total = 5000
	for _, saturated := range []bool{true, false} {
		srv, url := flowBroker(t)
		srv.flow.saturated.Store(saturated)

		cc, err := amqp.Dial(url)
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		cch, _ := cc.Channel()
		if _, err := cch.QueueDeclare("q", false, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		if err := cch.Qos(1, 0, false); err != nil {
			t.Fatal(err)
		}
		deliveries, err := cch.Consume("q", "", false, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}

		pc, err := amqp.Dial(url)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		pch, _ := pc.Channel()
		published := make(chan error, 1)
		go func() {
			for i := 0; i < total; i++ {
				if err := pch.Publish("", "q", false, false, amqp.Publishing{Body: make([]byte, 100)}); err != nil {
					published <- err
					return
				}
			}
			published <- nil
		}()

		// A consumer that takes a message every 2ms: it keeps taking, and is far slower than
		// the publisher. Pacing starts at the first delivery after the queue spilled, so the
		// count starts after a few deliveries.
		acked := 0
		var before int
		for ; acked < 120; acked++ {
			if acked == 20 {
				before = enqueued(srv, "q", acked)
			}
			d := <-deliveries
			time.Sleep(2 * time.Millisecond)
			if err := d.Ack(false); err != nil {
				t.Fatal(err)
			}
		}
		n := enqueued(srv, "q", acked) - before
		t.Logf("saturated %v: %d messages enqueued while the consumer took 100", saturated, n)
		if saturated && n > 1000 {
			t.Errorf("saturated: the queue took %d messages while its consumer took 100; the publisher was not paced", n)
		}
		if !saturated {
			deadline := time.Now().Add(20 * time.Second)
			for enqueued(srv, "q", acked) < total {
				if time.Now().After(deadline) {
					t.Fatalf("not saturated: only %d of %d messages reached the queue in 20s", enqueued(srv, "q", acked), total)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		// The CPU frees up: the publisher is released, and every message arrives once.
		srv.flow.saturated.Store(false)
		if err := <-published; err != nil {
			t.Fatal(err)
		}
		for ; acked < total; acked++ {
			select {
			case d := <-deliveries:
				if err := d.Ack(false); err != nil {
					t.Fatal(err)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("saturated %v: received %d of %d messages", saturated, acked, total)
			}
		}
		// The last ack is on its way: wait for the queue to be empty.
		for deadline := time.Now().Add(10 * time.Second); enqueued(srv, "q", acked) != total; {
			if time.Now().After(deadline) {
				t.Fatalf("saturated %v: %d messages went through the queue, want %d", saturated, enqueued(srv, "q", acked), total)
			}
			time.Sleep(time.Millisecond)
		}
		select {
		case d := <-deliveries:
			t.Fatalf("saturated %v: an extra delivery, tag %d", saturated, d.DeliveryTag)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
