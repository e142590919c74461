package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The real binary is killed (SIGKILL) while a publisher streams confirmed delayed messages
// with short delays, so that held messages are being written, read back and delivered at the
// moment of the kill. After the restart every confirmed message reaches the queue, once it is
// due (duplicates are allowed: a delivery just before the kill may be repeated). Then a clean
// restart halfway through delivering a second batch delivers each of its messages once.
func TestDelayedKillMidStream(t *testing.T) {
	warrenOnly(t, "kills and restarts the warren binary")
	runner := newBrokerRunner(t, buildWarrenBinary(t), t.TempDir())
	p := runner.start()
	conn := dialConfig(t, p.url, amqp.Config{})
	ch := channel(t, conn)
	const x, q, maxDelay = "delayed.stream", "delayed.stream.target", 1500
	if err := ch.ExchangeDeclare(x, "x-delayed-message", true, false, false, false, amqp.Table{"x-delayed-type": "direct"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	bind(t, ch, q, "k", x, nil)

	pubCh := channel(t, conn)
	if err := pubCh.Confirm(false); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	confirmed := make(map[int]time.Time) // body → earliest due time (wall clock)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 17))
	killAt := time.Now().Add(time.Duration(800+rng.IntN(800)) * time.Millisecond)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := 0; time.Now().Before(killAt); i++ {
		delay := rng.IntN(maxDelay)
		sent := time.Now().Round(0)
		dc, err := pubCh.PublishWithDeferredConfirm(x, "k", false, false, delayed(strconv.Itoa(i), int32(delay)))
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			if ok, err := dc.WaitContext(ctx); err == nil && ok {
				mu.Lock()
				confirmed[i] = sent.Add(time.Duration(delay) * time.Millisecond)
				mu.Unlock()
			}
		}()
	}
	p.kill(t)
	wg.Wait() // the confirms that arrived before the kill; the others fail with the connection
	if len(confirmed) < 100 {
		t.Fatalf("only %d publishes confirmed before the kill: too few to test", len(confirmed))
	}

	p = runner.start()
	conn = dialConfig(t, p.url, amqp.Config{})
	ch = channel(t, conn)
	deliveries := consume(t, ch, q, "", false)
	seen := make(map[int]int)
	deadline := time.After(maxDelay*time.Millisecond + verifyDeadline)
	for missing := len(confirmed); missing > 0; {
		var d amqp.Delivery
		select {
		case d = <-deliveries:
		case <-deadline:
			t.Fatalf("%d of %d confirmed messages not delivered after the restart (first few missing: %v)",
				missing, len(confirmed), firstMissing(confirmed, seen, 5))
		}
		n, err := strconv.Atoi(string(d.Body))
		if err != nil {
			t.Fatalf("unexpected body %q", d.Body)
		}
		if due, ok := confirmed[n]; ok && seen[n] == 0 {
			missing--
			if now := time.Now(); now.Before(due) {
				t.Errorf("message %d received %v before its due time", n, due.Sub(now))
			}
		}
		seen[n]++
		if err := d.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	dups := 0
	for _, c := range seen {
		dups += c - 1
	}
	t.Logf("%d confirmed before the kill, %d distinct delivered after it (%d unconfirmed ones among them), %d duplicates",
		len(confirmed), len(seen), len(seen)-len(confirmed), dups)

	// Every message stored before the kill was due within maxDelay of it: by then the restarted
	// broker has routed them all. Drain what else comes until then.
	drainUntil(t, deliveries, time.After(maxDelay*time.Millisecond))

	// A clean restart in the middle of a drain, with time slices partly delivered, delivers
	// each message exactly once across it: what was delivered before is not held any more.
	const n2 = 2000
	pub := newPublisher(t, conn)
	for i := range n2 {
		pub.publish(x, "k", false, delayed(strconv.Itoa(-1-i), int32(rng.IntN(maxDelay))))
	}
	seen2 := make(map[int]int)
	for len(seen2) < n2/2 {
		select {
		case d := <-deliveries:
			seen2[bodyInt(t, d)]++
			if err := d.Ack(false); err != nil {
				t.Fatal(err)
			}
		case <-time.After(maxDelay*time.Millisecond + timeout):
			t.Fatalf("only %d of %d delivered", len(seen2), n2)
		}
	}
	if err := ch.Close(); err != nil {
		t.Fatal(err)
	}
	p.terminate(t)
	p = runner.start()
	held := recoveredHeld(t, p)
	conn = dialConfig(t, p.url, amqp.Config{})
	ch = channel(t, conn)
	deliveries = consume(t, ch, q, "", false)
	deadline = time.After(maxDelay*time.Millisecond + timeout)
	for len(seen2) < n2 {
		select {
		case d := <-deliveries:
			seen2[bodyInt(t, d)]++
			if err := d.Ack(false); err != nil {
				t.Fatal(err)
			}
		case <-deadline:
			t.Fatalf("%d of %d delivered after the clean restart", len(seen2), n2)
		}
	}
	// All of them were due before the deadline: whatever else comes is a duplicate.
	drainUntil(t, deliveries, deadline, func(d amqp.Delivery) { seen2[bodyInt(t, d)]++ })
	for body, c := range seen2 {
		if c > 1 {
			t.Errorf("message %d delivered %d times across a clean restart", body, c)
		}
	}
	t.Logf("clean restart after %d of %d delivered: %d held at the restart", n2/2, n2, held)
	p.terminate(t)
}

// drainUntil acks every delivery until the channel until fires, calling each of also first.
func drainUntil(t *testing.T, deliveries <-chan amqp.Delivery, until <-chan time.Time, also ...func(amqp.Delivery)) {
	t.Helper()
	for {
		select {
		case d := <-deliveries:
			for _, f := range also {
				f(d)
			}
			if err := d.Ack(false); err != nil {
				t.Fatal(err)
			}
		case <-until:
			return
		}
	}
}

func bodyInt(t *testing.T, d amqp.Delivery) int {
	t.Helper()
	n, err := strconv.Atoi(string(d.Body))
	if err != nil {
		t.Fatalf("unexpected body %q", d.Body)
	}
	return n
}

// recoveredHeld reads held_messages from the broker's "recovered from the store" log line,
// which it writes before it listens.
func recoveredHeld(t *testing.T, p *brokerProc) int64 {
	t.Helper()
	for _, line := range p.out.tail() {
		if !strings.Contains(line, "recovered from the store") {
			continue
		}
		var rec struct {
			Held *int64 `json:"held_messages"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Held == nil {
			t.Fatalf("log line without held_messages: %s", line)
		}
		return *rec.Held
	}
	t.Fatalf("no \"recovered from the store\" line in the broker's log:\n%s", strings.Join(p.out.tail(), "\n"))
	return 0
}

func firstMissing(confirmed map[int]time.Time, seen map[int]int, n int) []string {
	var out []string
	for i := range confirmed {
		if seen[i] == 0 && len(out) < n {
			out = append(out, fmt.Sprint(i))
		}
	}
	return out
}
