package conformance

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The reload test's topology: rl.x (topic) routes "ev.*" keys to rl.a ("ev.#") and rl.b
// ("ev.*"); the reload replaces the binding to rl.b with one to a new queue rl.c ("ev.*").
var (
	reloadDefsBefore = dedent(`
		exchanges:
		  - {name: rl.x, type: topic, durable: true}
		queues:
		  - {name: rl.a, durable: true}
		  - {name: rl.b, durable: true}
		bindings:
		  - {source: rl.x, destination: rl.a, destination-type: queue, routing-key: "ev.#"}
		  - {source: rl.x, destination: rl.b, destination-type: queue, routing-key: "ev.*"}
	`)
	reloadDefsAfter = dedent(`
		exchanges:
		  - {name: rl.x, type: topic, durable: true}
		queues:
		  - {name: rl.a, durable: true}
		  - {name: rl.b, durable: true}
		  - {name: rl.c, durable: true}
		bindings:
		  - {source: rl.x, destination: rl.a, destination-type: queue, routing-key: "ev.#"}
		  - {source: rl.x, destination: rl.c, destination-type: queue, routing-key: "ev.*"}
	`)
	reloadBindingsAfter = []string{`/ rl.x -> queue rl.a "ev.#"`, `/ rl.x -> queue rl.c "ev.*"`}
)

const (
	reloadPublishers = 2
	reloadWindow     = 64  // unconfirmed publishes per publisher
	reloadPhase      = 500 // confirms before the reload, and again after it
)

// testConfigReload changes bindings under publisher load, with SIGHUP and with `warren config
// reload --control-socket`, and checks that no confirmed message is lost or duplicated: every message confirmed
// before the reload began is in rl.a and rl.b; every message published after the reload ended
// is in rl.a and rl.c and not in rl.b; rl.a, bound throughout, holds every confirmed message
// exactly once. `warren definitions export` then shows the new bindings, and its output passes
// `warren config check`.
func testConfigReload(t *testing.T, bin string) {
	t.Run("SIGHUP", func(t *testing.T) {
		t.Parallel()
		reloadUnderLoad(t, bin, func(b *cfgBroker) {
			mark := b.log.mark()
			b.signal(syscall.SIGHUP)
			// A signal has no reply: the reload has ended when the export shows its result.
			waitExportBindings(b, reloadBindingsAfter)
			if _, ok := b.log.waitFor(mark, timeout, func(s string) bool { return strings.Contains(strings.ToLower(s), "reload") }); !ok {
				t.Errorf("nothing about the reload in the log after SIGHUP")
			}
		})
	})
	t.Run("command", func(t *testing.T) {
		t.Parallel()
		reloadUnderLoad(t, bin, func(b *cfgBroker) {
			// Found by its control socket, which defaults to <data-dir>/warren.sock.
			sock := filepath.Join(b.dir, "data", "warren.sock")
			if r := runWarren(t, bin, "", "", "config", "reload", "--control-socket", sock); r.code != 0 {
				t.Fatalf("reload rejected, want it accepted:\n%v", r)
			}
		})
	})
}

// waitExportBindings polls `warren definitions export` until its bindings are want.
func waitExportBindings(b *cfgBroker, want []string) {
	b.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, _ := b.export()
		got := d.bindings()
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("10s after SIGHUP, the exported bindings are %q, want %q", got, want)
		}
		<-time.After(50 * time.Millisecond)
	}
}

// reloadMsg is one published message and what became of its publish.
type reloadMsg struct {
	id        string
	sent      time.Time // before the publish call
	confirmed time.Time // when the ack was seen; zero if there was none
	nacked    bool
}

func reloadUnderLoad(t *testing.T, bin string, reload func(*cfgBroker)) {
	b := startCfgBroker(t, bin, reloadDefsBefore)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stop := make(chan struct{})
	var stopOnce sync.Once
	stopPublishers := func() { stopOnce.Do(func() { close(stop) }) }
	var confirmedN atomic.Int64
	progress := make(chan struct{}, 1)
	results := make([][]reloadMsg, reloadPublishers)
	errs := make([]error, reloadPublishers)
	var wg sync.WaitGroup
	for i := range reloadPublishers {
		wg.Go(func() {
			results[i], errs[i] = reloadPublish(ctx, b.guestURL(), i, stop, func() {
				confirmedN.Add(1)
				select {
				case progress <- struct{}{}:
				default:
				}
			})
		})
	}
	defer func() { stopPublishers(); cancel(); wg.Wait() }()
	waitConfirmed := func(n int64, when string) {
		t.Helper()
		for confirmedN.Load() < n {
			select {
			case <-progress:
			case <-time.After(timeout):
				stopPublishers()
				cancel()
				wg.Wait()
				t.Fatalf("%s: only %d of %d publishes confirmed, none in the last %v; publisher errors: %v", when, confirmedN.Load(), n, timeout, errs)
			}
		}
	}

	waitConfirmed(reloadPhase, "before the reload")
	b.writeDefs(reloadDefsAfter)
	reloadStart := time.Now()
	reload(b)
	reloadEnd := time.Now()
	waitConfirmed(confirmedN.Load()+reloadPhase+reloadPublishers*reloadWindow, "after the reload")
	stopPublishers()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("publisher %d: %v", i, err)
		}
	}

	// What the queues hold.
	conn := b.dial("guest", "guest", "/")
	found := map[string]map[string]int{}
	for _, q := range []string{"rl.a", "rl.b", "rl.c"} {
		found[q] = drainIDs(t, conn, q)
	}

	var problems []string
	problem := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	var before, during, after, duringB, duringC, confirmed int
	known := map[string]bool{}
	for _, msgs := range results {
		for _, m := range msgs {
			known[m.id] = true
			switch {
			case m.nacked:
				problem("%s: nacked", m.id)
				continue
			case m.confirmed.IsZero():
				problem("%s: no confirm", m.id)
				continue
			}
			confirmed++
			a, bq, c := found["rl.a"][m.id], found["rl.b"][m.id], found["rl.c"][m.id]
			if a != 1 {
				problem("%s: confirmed, %d times in rl.a, want exactly once", m.id, a)
			}
			switch {
			case m.confirmed.Before(reloadStart):
				before++
				if bq != 1 || c != 0 {
					problem("%s: confirmed before the reload began, %d times in rl.b and %d in rl.c, want 1 and 0", m.id, bq, c)
				}
			case m.sent.After(reloadEnd):
				after++
				if bq != 0 || c != 1 {
					problem("%s: published after the reload ended, %d times in rl.b and %d in rl.c, want 0 and 1", m.id, bq, c)
				}
			default:
				during++
				duringB += bq
				duringC += c
			}
		}
	}
	for q, ids := range found {
		for id := range ids {
			if !known[id] {
				problem("%s holds a message the test did not publish: %q", q, id)
			}
		}
	}
	t.Logf("%d confirmed: %d before the reload, %d during it (%d in rl.b, %d in rl.c), %d after; reload took %v",
		confirmed, before, during, duringB, duringC, after, reloadEnd.Sub(reloadStart).Round(time.Millisecond))
	if len(problems) > 0 {
		n := len(problems)
		slices.Sort(problems)
		if n > 15 {
			problems = append(problems[:15], fmt.Sprintf("… and %d more", n-15))
		}
		t.Errorf("%d problems:\n%s", n, strings.Join(problems, "\n"))
	}
	if before < reloadPhase/2 || after < reloadPhase/2 {
		t.Errorf("only %d messages confirmed before the reload and %d published after it: too few to tell", before, after)
	}

	// The export shows the new bindings and is itself a valid definitions file.
	d, text := b.export()
	equalStrings(t, "exported bindings", d.bindings(), reloadBindingsAfter)
	equalStrings(t, "exported queues", d.queues(), []string{"/ rl.a", "/ rl.b", "/ rl.c"})
	equalStrings(t, "exported exchanges", d.exchanges(), []string{"/ rl.x topic"})
	path := writeCfgFile(t, t.TempDir(), "exported.yaml", text)
	if r := runWarren(t, b.bin, "", "", "config", "check", path); r.code != 0 {
		t.Errorf("warren config check rejects what definitions export printed:\n%v\nthe export:\n%s", r, text)
	}
}

// reloadPublish publishes to rl.x with confirms, reloadWindow unconfirmed at a time, until
// stop is closed, then waits for the outstanding confirms.
func reloadPublish(ctx context.Context, url string, n int, stop <-chan struct{}, confirmed func()) ([]reloadMsg, error) {
	conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(timeout)})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err == nil {
		err = ch.Confirm(false)
	}
	if err != nil {
		return nil, err
	}
	var msgs []reloadMsg
	type inFlight struct {
		i  int
		dc *amqp.DeferredConfirmation
	}
	var window []inFlight
	settle := func(f inFlight) error {
		select {
		case <-f.dc.Done():
		case <-ctx.Done():
			return fmt.Errorf("confirm of %s: %w", msgs[f.i].id, ctx.Err())
		}
		if f.dc.Acked() {
			msgs[f.i].confirmed = time.Now()
			confirmed()
		} else {
			msgs[f.i].nacked = true
		}
		return nil
	}
	var failed error
publishing:
	for seq := 0; ; seq++ {
		select {
		case <-stop:
			break publishing
		default:
		}
		m := reloadMsg{id: fmt.Sprintf("p%d.%06d", n, seq), sent: time.Now()}
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "rl.x", fmt.Sprintf("ev.p%d", n), false, false,
			amqp.Publishing{MessageId: m.id, Body: []byte(m.id)})
		if err != nil {
			failed = fmt.Errorf("publish %s: %w", m.id, err)
			break
		}
		msgs = append(msgs, m)
		window = append(window, inFlight{len(msgs) - 1, dc})
		if len(window) == reloadWindow {
			if failed = settle(window[0]); failed != nil {
				break
			}
			window = window[1:]
		}
	}
	for _, f := range window {
		if err := settle(f); err != nil {
			return msgs, err
		}
	}
	return msgs, failed
}

// drainIDs consumes everything in queue (which no one publishes to any more) and counts the
// message ids.
func drainIDs(t *testing.T, conn *amqp.Connection, queue string) map[string]int {
	t.Helper()
	ch := channel(t, conn)
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatalf("passive declare of %s: %v", queue, err)
	}
	ids := map[string]int{}
	if q.Messages == 0 {
		return ids
	}
	deliveries, err := ch.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		t.Fatalf("consume from %s: %v", queue, err)
	}
	for i := range q.Messages {
		select {
		case d, ok := <-deliveries:
			if !ok {
				t.Fatalf("the consumer on %s was closed after %d of %d messages", queue, i, q.Messages)
			}
			ids[d.MessageId]++
		case <-time.After(timeout):
			t.Fatalf("%s: %d of %d messages received, then nothing for %v", queue, i, q.Messages, timeout)
		}
	}
	return ids
}
