package conformance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// dialConfig connects to url with cfg and closes the connection when the test ends. Handshake
// failures are fatal; use amqp.DialConfig directly to test them.
func dialConfig(t testing.TB, url string, cfg amqp.Config) *amqp.Connection {
	t.Helper()
	if cfg.Dial == nil {
		cfg.Dial = amqp.DefaultDial(timeout)
	}
	conn, err := amqp.DialConfig(url, cfg)
	if err != nil {
		if serr := serveErrorFor(url); serr != nil {
			t.Fatalf("dial %s: %v (the broker's Serve returned: %v)", url, err, serr)
		}
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// dial connects to the broker under test.
func dial(t testing.TB) *amqp.Connection {
	t.Helper()
	return dialConfig(t, brokerURL, amqp.Config{})
}

// channel opens a channel on conn.
func channel(t testing.TB, conn *amqp.Connection) *amqp.Channel {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("open channel: %v", err)
	}
	return ch
}

// connChannel dials the broker and opens one channel: the start of most tests.
func connChannel(t testing.TB) (*amqp.Connection, *amqp.Channel) {
	t.Helper()
	conn := dial(t)
	return conn, channel(t, conn)
}

// uniqueName returns a name no other test or run uses: the test name and a random suffix.
func uniqueName(t testing.TB, kind string) string {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	n := strings.NewReplacer("/", ".", " ", "_", "#", "", "*", "").Replace(t.Name())
	if len(n) > 180 {
		n = n[len(n)-180:]
	}
	return "conf." + n + "." + kind + "." + hex.EncodeToString(b[:])
}

// admin is a connection for cleanups, kept apart from the tests' own connections so that it
// works even when a test ended with its channels closed by an expected error.
var (
	adminMu   sync.Mutex
	adminConn *amqp.Connection
)

func adminChannel() (*amqp.Channel, error) {
	adminMu.Lock()
	defer adminMu.Unlock()
	if adminConn == nil || adminConn.IsClosed() {
		c, err := amqp.DialConfig(brokerURL, amqp.Config{Dial: amqp.DefaultDial(timeout)})
		if err != nil {
			return nil, err
		}
		adminConn = c
	}
	return adminConn.Channel()
}

func closeAdmin() {
	adminMu.Lock()
	defer adminMu.Unlock()
	if adminConn != nil {
		_ = adminConn.Close()
		adminConn = nil
	}
}

// cleanup runs f on an admin channel when the test ends.
func cleanup(t testing.TB, what string, f func(ch *amqp.Channel) error) {
	t.Cleanup(func() {
		ch, err := adminChannel()
		if err == nil {
			err = f(ch)
			_ = ch.Close()
		}
		if err != nil {
			t.Errorf("cleanup %s: %v", what, err)
		}
	})
}

// deleteQueueLater deletes the queue when the test ends.
func deleteQueueLater(t testing.TB, name string) {
	cleanup(t, "queue "+name, func(ch *amqp.Channel) error {
		_, err := ch.QueueDelete(name, false, false, false)
		return err
	})
}

// deleteExchangeLater deletes the exchange when the test ends.
func deleteExchangeLater(t testing.TB, name string) {
	cleanup(t, "exchange "+name, func(ch *amqp.Channel) error {
		return ch.ExchangeDelete(name, false, false)
	})
}

// declareQueue declares a fresh non-durable queue with args and deletes it when the test ends.
func declareQueue(t testing.TB, ch *amqp.Channel, args amqp.Table) string {
	t.Helper()
	return declareLabeledQueue(t, ch, "q", args)
}

// declareLabeledQueue is declareQueue with a label in the name, for failure messages to show.
func declareLabeledQueue(t testing.TB, ch *amqp.Channel, label string, args amqp.Table) string {
	t.Helper()
	name := uniqueName(t, label)
	q, err := ch.QueueDeclare(name, false, false, false, false, args)
	if err != nil {
		t.Fatalf("declare queue %s: %v", name, err)
	}
	if q.Name != name {
		t.Fatalf("declare-ok queue = %q, want %q", q.Name, name)
	}
	deleteQueueLater(t, name)
	return name
}

// declareExchange declares a fresh non-durable exchange of kind and deletes it when the test ends.
func declareExchange(t testing.TB, ch *amqp.Channel, kind string, args amqp.Table) string {
	t.Helper()
	name := uniqueName(t, "x-"+kind)
	if err := ch.ExchangeDeclare(name, kind, false, false, false, false, args); err != nil {
		t.Fatalf("declare %s exchange %s: %v", kind, name, err)
	}
	deleteExchangeLater(t, name)
	return name
}

// bind binds queue to exchange with key and args, failing the test on error.
func bind(t testing.TB, ch *amqp.Channel, queue, key, exchange string, args amqp.Table) {
	t.Helper()
	if err := ch.QueueBind(queue, key, exchange, false, args); err != nil {
		t.Fatalf("bind %s to %s with %q: %v", queue, exchange, key, err)
	}
}

// queueCounts returns a queue's ready-message and consumer counts from a passive declare.
func queueCounts(t testing.TB, ch *amqp.Channel, name string) (messages, consumers int) {
	t.Helper()
	q, err := ch.QueueDeclarePassive(name, false, false, false, false, nil)
	if err != nil {
		t.Fatalf("passive declare %s: %v", name, err)
	}
	return q.Messages, q.Consumers
}

// wantMessages asserts how many ready messages a queue holds.
func wantMessages(t testing.TB, ch *amqp.Channel, name string, want int) {
	t.Helper()
	if got, _ := queueCounts(t, ch, name); got != want {
		t.Errorf("queue %s holds %d ready messages, want %d", name, got, want)
	}
}

// wantConsumers asserts how many consumers a queue has.
func wantConsumers(t testing.TB, ch *amqp.Channel, name string, want int) {
	t.Helper()
	if _, got := queueCounts(t, ch, name); got != want {
		t.Errorf("queue %s has %d consumers, want %d", name, got, want)
	}
}

// publisher publishes in confirm mode and waits for each confirm, so that once publish returns
// the broker has routed and enqueued the message: queue counts are then exact, and the absence
// of a message is a fact rather than a race.
type publisher struct {
	t       testing.TB
	ch      *amqp.Channel
	returns chan amqp.Return
}

func newPublisher(t testing.TB, conn *amqp.Connection) *publisher {
	t.Helper()
	ch := channel(t, conn)
	returns := ch.NotifyReturn(make(chan amqp.Return, 64))
	if err := ch.Confirm(false); err != nil {
		t.Fatalf("confirm.select: %v", err)
	}
	return &publisher{t: t, ch: ch, returns: returns}
}

// publish sends msg and waits for its confirm, which must be an ack.
func (p *publisher) publish(exchange, key string, mandatory bool, msg amqp.Publishing) {
	p.t.Helper()
	dc, err := p.ch.PublishWithDeferredConfirm(exchange, key, mandatory, false, msg)
	if err != nil {
		p.t.Fatalf("publish to %q with key %q: %v", exchange, key, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	acked, err := dc.WaitContext(ctx)
	if err != nil {
		p.t.Fatalf("confirm of publish to %q with key %q: %v", exchange, key, err)
	}
	if !acked {
		p.t.Fatalf("publish to %q with key %q was nacked", exchange, key)
	}
}

// body publishes a text body.
func (p *publisher) body(exchange, key, body string) {
	p.t.Helper()
	p.publish(exchange, key, false, amqp.Publishing{Body: []byte(body)})
}

// returned reports the basic.return that came before the last confirm, if any. The library
// hands returns over before it processes the confirm that follows them.
func (p *publisher) returned() (amqp.Return, bool) {
	select {
	case r := <-p.returns:
		return r, true
	default:
		return amqp.Return{}, false
	}
}

// recv waits for one value from c, failing the test after the timeout or when c is closed.
func recv[T any](t testing.TB, c <-chan T, what string) T {
	t.Helper()
	select {
	case v, ok := <-c:
		if !ok {
			t.Fatalf("%s: channel closed", what)
		}
		return v
	case <-time.After(timeout):
		t.Fatalf("%s: nothing within %v", what, timeout)
	}
	panic("unreachable")
}

// timeoutAfter fires when a wait has lasted too long.
func timeoutAfter() <-chan time.Time { return time.After(timeout) }

// recvBodies receives n deliveries and returns their bodies in order.
func recvBodies(t testing.TB, c <-chan amqp.Delivery, n int) []string {
	t.Helper()
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, string(recv(t, c, fmt.Sprintf("delivery %d of %d", i+1, n)).Body))
	}
	return out
}

// get fetches one message with basic.get, failing the test if the queue is empty.
func get(t testing.TB, ch *amqp.Channel, queue string, autoAck bool) amqp.Delivery {
	t.Helper()
	d, ok, err := ch.Get(queue, autoAck)
	if err != nil {
		t.Fatalf("basic.get %s: %v", queue, err)
	}
	if !ok {
		t.Fatalf("basic.get %s: get-empty, want a message", queue)
	}
	return d
}

// getAll drains a queue with basic.get (auto-ack) and returns the deliveries in order.
func getAll(t testing.TB, ch *amqp.Channel, queue string) []amqp.Delivery {
	t.Helper()
	var out []amqp.Delivery
	for {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatalf("basic.get %s: %v", queue, err)
		}
		if !ok {
			return out
		}
		out = append(out, d)
	}
}

// getBodies drains a queue with basic.get (auto-ack) and returns the bodies in order.
func getBodies(t testing.TB, ch *amqp.Channel, queue string) []string {
	t.Helper()
	var out []string
	for _, d := range getAll(t, ch, queue) {
		out = append(out, string(d.Body))
	}
	return out
}

// wantEmpty asserts that basic.get finds no message.
func wantEmpty(t testing.TB, ch *amqp.Channel, queue string) {
	t.Helper()
	d, ok, err := ch.Get(queue, true)
	if err != nil {
		t.Fatalf("basic.get %s: %v", queue, err)
	}
	if ok {
		t.Errorf("basic.get %s: got %q, want get-empty", queue, d.Body)
	}
}

// notifyClose registers for the channel's close; call it before the action that closes it.
func notifyClose(ch *amqp.Channel) chan *amqp.Error {
	return ch.NotifyClose(make(chan *amqp.Error, 1))
}

// notifyConnClose registers for the connection's close.
func notifyConnClose(conn *amqp.Connection) chan *amqp.Error {
	return conn.NotifyClose(make(chan *amqp.Error, 1))
}

// wantClosed waits for a server-initiated close with code and a reply text starting with prefix.
func wantClosed(t testing.TB, closes <-chan *amqp.Error, code int, prefix string) {
	t.Helper()
	select {
	case err, ok := <-closes:
		if !ok || err == nil {
			t.Fatalf("closed without an error, want %d %q", code, prefix)
		}
		checkError(t, err, code, prefix)
	case <-time.After(timeout):
		t.Fatalf("no close within %v, want %d %q", timeout, code, prefix)
	}
}

// wantError asserts that err is a server *amqp.Error with code and a reply text starting with
// prefix.
func wantError(t testing.TB, err error, code int, prefix string) {
	t.Helper()
	var aerr *amqp.Error
	if !errors.As(err, &aerr) {
		t.Fatalf("error = %v (%T), want *amqp.Error %d %q", err, err, code, prefix)
	}
	checkError(t, aerr, code, prefix)
}

func checkError(t testing.TB, err *amqp.Error, code int, prefix string) {
	t.Helper()
	if err.Code != code {
		t.Errorf("reply code = %d (%q), want %d", err.Code, err.Reason, code)
	}
	if !strings.HasPrefix(err.Reason, prefix) {
		t.Errorf("reply text = %q, want prefix %q", err.Reason, prefix)
	}
	if !err.Server {
		t.Errorf("error %v was raised by the client library, want one from the server", err)
	}
}

// consume starts a consumer with a client-chosen tag (empty: server-generated).
func consume(t testing.TB, ch *amqp.Channel, queue, tag string, autoAck bool) <-chan amqp.Delivery {
	t.Helper()
	d, err := ch.Consume(queue, tag, autoAck, false, false, false, nil)
	if err != nil {
		t.Fatalf("basic.consume %s: %v", queue, err)
	}
	return d
}

// equalStrings compares two string slices, reporting a mismatch.
func equalStrings(t testing.TB, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

// seq returns the strings prefix0 … prefix(n-1).
func seq(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

// toQueue publishes each body to the default exchange with queue as the key, confirmed.
func (p *publisher) toQueue(queue string, bodies ...string) {
	p.t.Helper()
	for _, b := range bodies {
		p.body("", queue, b)
	}
}
