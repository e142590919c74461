package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/store/disktest"
)

// tally records what a publisher was told and what consumers got, by message id.
type tally struct {
	mu        sync.Mutex
	acked     map[int]bool
	nacked    map[int]bool
	delivered map[int]bool
}

func (ta *tally) counts() (acked, nacked, delivered int) {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	return len(ta.acked), len(ta.nacked), len(ta.delivered)
}

// consumeInto acks and records every message of queue on a connection of its own, until the
// connection ends.
func consumeInto(t *testing.T, addr, queue string, ta *tally) *amqp.Connection {
	t.Helper()
	conn, err := amqp.Dial("amqp://guest:guest@" + addr + "/")
	if err != nil {
		t.Fatalf("consumer dial: %v", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Qos(200, 0, false); err != nil {
		t.Fatal(err)
	}
	ds, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		t.Fatalf("consume: %v", err)
	}
	go func() {
		for d := range ds {
			id, _ := strconv.Atoi(d.MessageId)
			ta.mu.Lock()
			ta.delivered[id] = true
			ta.mu.Unlock()
			_ = d.Ack(false)
		}
	}()
	return conn
}

// publishUntil publishes persistent messages with confirms, 64 in flight, numbering them from
// *next, until stop is closed; it records every ack and nack and returns once every publish
// has its answer or the connection is gone.
func publishUntil(t *testing.T, addr, queue string, next *int, ta *tally, stop <-chan struct{}) {
	conn, err := amqp.Dial("amqp://guest:guest@" + addr + "/")
	if err != nil {
		t.Errorf("publisher dial: %v", err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Error(err)
		return
	}
	if err := ch.Confirm(false); err != nil {
		t.Error(err)
		return
	}
	body := make([]byte, 32<<10)
	type inflight struct {
		id int
		dc *amqp.DeferredConfirmation
	}
	window := make(chan inflight, 64)
	answered := make(chan struct{})
	go func() {
		defer close(answered)
		for f := range window {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			ok, err := f.dc.WaitContext(ctx)
			cancel()
			if err != nil {
				t.Errorf("message %d: no confirm: %v", f.id, err)
				continue
			}
			ta.mu.Lock()
			if ok {
				ta.acked[f.id] = true
			} else {
				ta.nacked[f.id] = true
			}
			ta.mu.Unlock()
		}
	}()
	defer func() { close(window); <-answered }()
	for {
		select {
		case <-stop:
			return
		default:
		}
		id := *next
		*next++
		dc, err := ch.PublishWithDeferredConfirm("", queue, false, false, amqp.Publishing{
			DeliveryMode: amqp.Persistent, MessageId: strconv.Itoa(id), Body: body,
		})
		if err != nil {
			t.Errorf("publish %d: %v", id, err)
			return
		}
		window <- inflight{id, dc}
	}
}

// waitFor polls cond for up to d.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDiskFilledUnderConfirmingPublisher: the real broker's data dir is on a small tmpfs; while
// a confirming publisher sends persistent messages to a durable queue that a consumer drains,
// dd fills the disk. The broker stays up; publishing stops (nacks, or a blocked connection),
// and resumes by itself once the fill file is gone. Then the broker is killed with SIGKILL
// and started again on the same data dir. No message nacked to the publisher ever reaches a
// consumer, before or after the restart, and every acked one does.
func TestDiskFilledUnderConfirmingPublisher(t *testing.T) {
	mnt := disktest.MountTmpfs(t, "256m")
	dir := filepath.Join(mnt, "data")
	filler := filepath.Join(mnt, "fill")
	bin := buildBinary(t)
	flags := []string{"--data-dir", dir, "--disk-free-limit", "32MiB"}
	addr, log, cmd := startBrokerBin(t, bin, "", flags...)

	setup, err := amqp.Dial("amqp://guest:guest@" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	sch, err := setup.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sch.QueueDeclare("orders", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	_ = setup.Close()

	ta := &tally{acked: map[int]bool{}, nacked: map[int]bool{}, delivered: map[int]bool{}}
	consumer := consumeInto(t, addr, "orders", ta)
	next := 1
	round := func(enough func() bool, during func()) {
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { defer close(done); publishUntil(t, addr, "orders", &next, ta, stop) }()
		if during != nil {
			during()
		}
		waitUntil(t, 60*time.Second, "the publisher's progress", enough)
		close(stop)
		<-done
	}

	// Flowing, then the disk fills under it.
	round(func() bool { a, _, _ := ta.counts(); return a >= 300 }, nil)
	before, _, _ := ta.counts()
	round(func() bool {
		_, n, _ := ta.counts()
		return n > 0 || len(log.matching("low on disk")) > 0 || len(log.matching("disk alarm")) > 0
	}, func() { disktest.Fill(t, filler) })
	time.Sleep(2 * time.Second) // full for a while
	if !log.alive() {
		t.Fatalf("the broker exited on the full disk:\n%s", log.crashReport())
	}
	// Space comes back: confirms resume without a restart.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	acked, nacked, _ := ta.counts()
	round(func() bool { a, _, _ := ta.counts(); return a >= acked+300 }, nil)
	t.Logf("acked %d before the fill, %d by the end of it, %d nacked; %d acked in all", before, acked, nacked, len(ta.acked))

	// Let the consumer catch up on part of it, then kill -9 and start again on the same disk.
	time.Sleep(200 * time.Millisecond)
	_ = consumer.Close()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "the killed broker to exit", func() bool { return !log.alive() })
	addr, log, _ = startBrokerBin(t, bin, "", flags...)
	consumer = consumeInto(t, addr, "orders", ta)
	defer consumer.Close()
	waitUntil(t, 30*time.Second, "every acked message to be delivered", func() bool {
		ta.mu.Lock()
		defer ta.mu.Unlock()
		for id := range ta.acked {
			if !ta.delivered[id] {
				return false
			}
		}
		return true
	})
	time.Sleep(300 * time.Millisecond) // anything nacked that was queued would show up by now

	ta.mu.Lock()
	defer ta.mu.Unlock()
	var wrong []string
	for id := range ta.nacked {
		if ta.delivered[id] {
			wrong = append(wrong, fmt.Sprint(id))
		}
	}
	if len(wrong) > 0 {
		t.Errorf("%d of %d nacked messages were delivered: %v", len(wrong), len(ta.nacked), wrong)
	}
	if !log.alive() {
		t.Fatalf("the restarted broker exited:\n%s", log.crashReport())
	}
}
