package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"
)

// lockedBuffer is a log sink safe for concurrent writers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Split(strings.TrimSpace(b.buf.String()), "\n")
}

// A flood of wrong passwords from one address is refused at no more than 50 a second (here:
// the refusals span at least the time 50 a second take, less a little for the first slots), a
// correct login
// from the same address in the middle of the flood succeeds while the flood goes on, and the
// log has one full line and summaries with the rest, not a line per refusal.
func TestLoginFloodIsSlowedPerSource(t *testing.T) {
	const attempts, workers, perSecond, jitter = 200, 10, 50, 5
	logs := &lockedBuffer{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := New(Config{Logger: zerolog.New(logs)})
	go func() { _ = srv.Serve(context.Background(), ln) }()
	shutdown := sync.OnceFunc(func() { _ = srv.Shutdown(context.Background()) })
	t.Cleanup(shutdown)
	addr := ln.Addr().String()

	var (
		mu       sync.Mutex
		refused  []time.Time
		next     atomic.Int64
		finished atomic.Bool
		wg       sync.WaitGroup
	)
	halfway := make(chan struct{})
	var halfOnce sync.Once
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= attempts {
				_, err := amqp.Dial("amqp://guest:wrong@" + addr + "/")
				var ae *amqp.Error
				if !errors.As(err, &ae) || ae.Code != amqp.AccessRefused {
					t.Errorf("wrong password: %v, want 403 ACCESS_REFUSED", err)
					return
				}
				mu.Lock()
				refused = append(refused, time.Now())
				if len(refused) == attempts/4 {
					halfOnce.Do(func() { close(halfway) })
				}
				mu.Unlock()
			}
		}()
	}
	go func() {
		wg.Wait()
		finished.Store(true)
	}()

	select {
	case <-halfway:
	case <-time.After(30 * time.Second):
		t.Fatal("the flood did not get a quarter of the way in 30 s")
	}
	conn, err := amqp.Dial("amqp://guest:guest@" + addr + "/")
	if err != nil {
		t.Fatalf("correct password during the flood: %v", err)
	}
	if finished.Load() {
		t.Error("the correct login only succeeded after the flood was over")
	}
	_ = conn.Close()
	wg.Wait()

	// The rate over the whole flood: refusals come one per slot, 1/perSecond apart. A machine
	// that is late to run a goroutine can only make them later, never more frequent on
	// average, whereas counting them in one-second windows at the client would see late
	// refusals bunched together.
	slices.SortFunc(refused, func(a, b time.Time) int { return a.Compare(b) })
	span := refused[len(refused)-1].Sub(refused[0])
	if want := time.Duration(len(refused)-1-jitter) * time.Second / perSecond; span < want {
		t.Fatalf("%d refusals in %v, want them spread over at least %v (at most %d a second)", len(refused), span, want, perSecond)
	}

	shutdown() // flushes the summaries
	full, summarised := 0, 0
	for _, line := range logs.lines() {
		var e struct {
			Message string `json:"message"`
			Count   int    `json:"count"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		switch {
		case strings.HasPrefix(e.Message, "login refused"):
			full++
		case e.Message == "logins refused":
			summarised += e.Count
		case strings.Contains(e.Message, "handshake failed"):
			t.Errorf("a refused login also logged %q", line)
		}
	}
	if full != 1 || full+summarised != attempts {
		t.Errorf("log: %d full lines and %d refusals in summaries, want 1 and %d", full, summarised, attempts-1)
	}
}

// The limiter tracks a bounded number of addresses: a flood from many addresses shares one
// schedule beyond the bound, and addresses with nothing scheduled are forgotten.
func TestLoginLimiterIsBounded(t *testing.T) {
	const bound = 8
	l := newLoginLimiter(20*time.Millisecond, bound)
	now := time.Now()
	for i := range 100 {
		src := fmt.Sprintf("10.0.0.%d", i)
		at := l.failed(src, now)
		switch {
		case i < bound && !at.Equal(now):
			t.Fatalf("first failure of %s at +%v, want at once", src, at.Sub(now))
		case i >= bound && !at.Equal(now.Add(time.Duration(i-bound)*20*time.Millisecond)):
			t.Fatalf("failure %d beyond the bound at +%v, want +%v on the shared schedule", i, at.Sub(now), time.Duration(i-bound)*20*time.Millisecond)
		}
	}
	if n := l.sources(); n != bound {
		t.Fatalf("%d addresses tracked, want %d", n, bound)
	}
	// A second failure of a tracked address waits for its slot; its next attempt is gated.
	if at := l.failed("10.0.0.1", now); !at.Equal(now.Add(20 * time.Millisecond)) {
		t.Fatalf("second failure at +%v, want +20ms", at.Sub(now))
	}
	if at, reserved := l.admit("10.0.0.1", now); !reserved || !at.Equal(now.Add(40*time.Millisecond)) {
		t.Fatalf("attempt after two failures: at +%v reserved %v, want +40ms reserved", at.Sub(now), reserved)
	}
	if _, reserved := l.admit("192.0.2.1", now); reserved {
		t.Fatal("an address with no failures was delayed")
	}
	later := now.Add(time.Second)
	if at := l.failed("192.0.2.1", later); !at.Equal(later) {
		t.Fatalf("after the schedules expired, a new address's failure at +%v, want at once", at.Sub(later))
	}
	if n := l.sources(); n != 1 {
		t.Fatalf("%d addresses tracked after the others expired, want 1", n)
	}
}
