package conformance

// Helpers for the tests that run the real warren binary as a subprocess, kill it and start it
// again on the same data directory: the process runner, and the crash test's messages, model of
// what must survive, clients and verification.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// procTimeout bounds a broker process's start (recovery included) and its exit after a signal.
const procTimeout = 30 * time.Second

// readyLine is what the broker logs once it accepts connections.
const readyLine = "listening for AMQP 0-9-1"

// buildWarrenBinary compiles cmd/warren into the test's temporary directory, without -race
// whatever the test binary was built with.
func buildWarrenBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "warren")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/warren").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ../cmd/warren: %v\n%s", err, out)
	}
	return bin
}

// brokerRunner starts broker processes on one data directory, one after the other, and makes
// sure none outlives the test. On failure it logs the end of the last two processes' logs.
type brokerRunner struct {
	t       *testing.T
	bin     string
	dataDir string
	procs   []*brokerProc
}

func newBrokerRunner(t *testing.T, bin, dataDir string) *brokerRunner {
	r := &brokerRunner{t: t, bin: bin, dataDir: dataDir}
	t.Cleanup(func() {
		for _, p := range r.procs {
			p.stop()
		}
		if !t.Failed() {
			return
		}
		for _, p := range r.procs[max(0, len(r.procs)-2):] {
			t.Logf("last log lines of broker process %d (%s):\n%s", p.n, p.exitStatus(), strings.Join(p.out.tail(), "\n"))
		}
	})
	return r
}

// start runs a broker on a fresh loopback port (the kernel picks it: --listen 127.0.0.1:0, and
// the port is read from the ready log line) and waits until it accepts connections.
func (r *brokerRunner) start() *brokerProc {
	r.t.Helper()
	p := &brokerProc{n: len(r.procs) + 1, exited: make(chan struct{}), ready: make(chan string, 1)}
	p.out = &logLines{onLine: p.sawLine}
	p.cmd = exec.Command(r.bin, "--listen", "127.0.0.1:0", "--prometheus-listen", "127.0.0.1:0", "--management-listen", "127.0.0.1:0", "--data-dir", r.dataDir, "--log-level", "info")
	p.cmd.Stderr = p.out
	if err := p.cmd.Start(); err != nil {
		r.t.Fatalf("start broker process: %v", err)
	}
	r.procs = append(r.procs, p)
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	select {
	case addr := <-p.ready:
		p.url = "amqp://guest:guest@" + addr + "/"
		return p
	case <-p.exited:
		r.t.Fatalf("broker process %d exited (%s) before logging %q:\n%s", p.n, p.exitStatus(), readyLine, strings.Join(p.out.tail(), "\n"))
	case <-time.After(procTimeout):
		r.t.Fatalf("broker process %d did not log %q within %v", p.n, readyLine, procTimeout)
	}
	panic("unreachable")
}

// brokerProc is one run of the broker binary.
type brokerProc struct {
	n     int // 1 for the runner's first process
	cmd   *exec.Cmd
	url   string
	out   *logLines
	ready chan string // the listen address, once

	exited  chan struct{} // closed when Wait has returned
	waitErr error         // set before exited is closed
}

func (p *brokerProc) sawLine(line string) {
	if !strings.Contains(line, readyLine) {
		return
	}
	var rec struct {
		Addr string `json:"addr"`
	}
	if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Addr == "" {
		return
	}
	select {
	case p.ready <- rec.Addr:
	default:
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *brokerProc) kill(t *testing.T) {
	t.Helper()
	if !p.alive() {
		t.Fatalf("broker process %d exited by itself (%s) before it was to be killed", p.n, p.exitStatus())
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("kill broker process %d: %v", p.n, err)
	}
	p.waitExit(t)
}

// terminate sends SIGTERM and expects a clean exit, status 0.
func (p *brokerProc) terminate(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM to broker process %d: %v (%s)", p.n, err, p.exitStatus())
	}
	p.waitExit(t)
	if p.waitErr != nil {
		t.Fatalf("broker process %d after SIGTERM: %v, want exit status 0", p.n, p.waitErr)
	}
}

// alive reports whether the process is still running.
func (p *brokerProc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func (p *brokerProc) waitExit(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(procTimeout):
		t.Fatalf("broker process %d still running %v after the signal", p.n, procTimeout)
	}
}

// stop kills the process if it still runs; for cleanups.
func (p *brokerProc) stop() {
	if p.alive() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

func (p *brokerProc) exitStatus() string {
	select {
	case <-p.exited:
		if p.waitErr == nil {
			return "exit status 0"
		}
		return p.waitErr.Error()
	default:
		return "running"
	}
}

// logLines is the broker's stderr: it hands each complete line to onLine and keeps the last
// few for failure reports.
type logLines struct {
	onLine func(string)

	mu      sync.Mutex
	partial []byte
	last    []string
}

const logTail = 40

func (l *logLines) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, b...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		line := string(l.partial[:i])
		l.partial = l.partial[i+1:]
		if len(l.last) == logTail {
			l.last = l.last[1:]
		}
		l.last = append(l.last, line)
		l.onLine(line)
	}
	return len(b), nil
}

func (l *logLines) tail() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := append([]string(nil), l.last...)
	if len(l.partial) > 0 {
		out = append(out, string(l.partial))
	}
	return out
}

// crashMsg names one test message; everything about it follows from the name.
type crashMsg struct {
	round, pub, seq int
	fanout          bool
}

func (c crashMsg) id() string {
	kind := "q"
	if c.fanout {
		kind = "f"
	}
	return fmt.Sprintf("r%02d.p%d.%s.%06d", c.round, c.pub, kind, c.seq)
}

// route returns where the message is published and the queues it lands in.
func (c crashMsg) route() (exchange, key string, queues []string) {
	if c.fanout {
		return crashFanout, "", []string{crashFanA, crashFanB}
	}
	return "", crashQueue, []string{crashQueue}
}

// crashBodySizes are the filler sizes; fanned-out messages get larger bodies, which the store
// may keep once for both queues.
var (
	crashBodySizes  = []int{0, 80, 900, 5000}
	crashFanoutSize = []int{200, 9000, 70000}
)

func (c crashMsg) body() []byte {
	id := c.id()
	sizes := crashBodySizes
	if c.fanout {
		sizes = crashFanoutSize
	}
	n := sizes[c.seq%len(sizes)]
	b := make([]byte, 0, len(id)+1+n)
	b = append(b, id...)
	b = append(b, ':')
	for i := range n {
		b = append(b, id[i%len(id)])
	}
	return b
}

func (c crashMsg) publishing() amqp.Publishing {
	return amqp.Publishing{
		ContentType:     "application/x-warren-crash",
		ContentEncoding: "identity",
		DeliveryMode:    amqp.Persistent,
		Priority:        uint8(c.seq % 10),
		CorrelationId:   fmt.Sprintf("corr-%d", c.seq),
		MessageId:       c.id(),
		Timestamp:       time.Unix(1_700_000_000+int64(c.seq), 0),
		Type:            "crash-test",
		AppId:           "warren-conformance",
		Headers: amqp.Table{
			"round":     int32(c.round),
			"publisher": int32(c.pub),
			"seq":       int64(c.seq),
			"fanout":    c.fanout,
			"note":      "persistent message " + c.id(),
		},
		Body: c.body(),
	}
}

// sameMessage reports whether a delivery carries exactly what was published.
func sameMessage(want amqp.Publishing, d amqp.Delivery) bool {
	return d.ContentType == want.ContentType && d.ContentEncoding == want.ContentEncoding &&
		d.DeliveryMode == want.DeliveryMode && d.Priority == want.Priority &&
		d.CorrelationId == want.CorrelationId && d.ReplyTo == want.ReplyTo &&
		d.Expiration == want.Expiration && d.MessageId == want.MessageId &&
		d.Timestamp.Unix() == want.Timestamp.Unix() && d.Type == want.Type &&
		d.UserId == want.UserId && d.AppId == want.AppId &&
		reflect.DeepEqual(d.Headers, want.Headers) && bytes.Equal(d.Body, want.Body)
}

// crashKey is one copy of a message: a message fanned out has one per queue.
type crashKey struct{ queue, id string }

// crashFate is what the test knows about one copy.
type crashFate struct {
	confirmed bool   // the publish was confirmed with an ack: the copy must be there
	ackSent   bool   // a consumer acked it, not known to be durable: it may be there or not
	gone      string // why it must never be seen again (acked durably, missing at a restart)
}

// crashModel is the test's record of every message published and what became of each copy.
// Clients update it concurrently during a round; verify reads and resets it between rounds.
type crashModel struct {
	mu    sync.Mutex
	msgs  map[string]crashMsg
	fates map[crashKey]*crashFate
}

func newCrashModel() *crashModel {
	return &crashModel{msgs: map[string]crashMsg{}, fates: map[crashKey]*crashFate{}}
}

// published records a message before it is sent.
func (m *crashModel) published(c crashMsg, queues []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.msgs[c.id()] = c
	for _, q := range queues {
		m.fates[crashKey{q, c.id()}] = &crashFate{}
	}
}

func (m *crashModel) confirmed(id string, queues []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, q := range queues {
		m.fates[crashKey{q, id}].confirmed = true
	}
}

// acked records acks about to be sent, or, with durable, acks a confirmed marker has covered.
// It returns how many keys the test never published.
func (m *crashModel) acked(keys []crashKey, durable bool) (unknown int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		f := m.fates[k]
		switch {
		case f == nil:
			unknown++
		case durable:
			f.gone = "acked durably"
		default:
			f.ackSent = true
		}
	}
	return unknown
}

// verify drains each queue and checks what it held against the model. wantRedelivered is what
// every message's redelivered flag must be. Then, with keep, it requeues everything it found (so
// that the next restart must bring it back again); otherwise it acks everything durably. Either
// way, the model then expects exactly what was found.
func (m *crashModel) verify(t *testing.T, when string, conn *amqp.Connection, queues []string, wantRedelivered, keep bool) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	var summary []string
	for _, q := range queues {
		summary = append(summary, m.verifyQueue(t, when, conn, q, wantRedelivered, keep))
	}
	t.Logf("%s, found: %s", when, strings.Join(summary, "; "))
	if t.Failed() {
		t.FailNow()
	}
}

// verifyDeadline bounds the wait for each delivery while draining a queue.
const verifyDeadline = 10 * time.Second

func (m *crashModel) verifyQueue(t *testing.T, when string, conn *amqp.Connection, q string, wantRedelivered, keep bool) string {
	t.Helper()
	ch := channel(t, conn)
	q0, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
	if err != nil {
		t.Fatalf("%s: durable queue %s: %v", when, q, err)
	}
	const tag = "verify"
	deliveries := consume(t, ch, q, tag, false)
	var got []amqp.Delivery
	for len(got) < q0.Messages {
		select {
		case d, ok := <-deliveries:
			if !ok {
				t.Fatalf("%s: queue %s: consumer closed after %d of the %d messages that queue.declare-ok counted", when, q, len(got), q0.Messages)
			}
			got = append(got, d)
		case <-time.After(verifyDeadline):
			t.Fatalf("%s: queue %s: queue.declare-ok counted %d messages, but only %d were delivered within %v", when, q, q0.Messages, len(got), verifyDeadline)
		}
	}
	if err := ch.Cancel(tag, false); err != nil {
		t.Fatalf("%s: cancel the consumer on %s: %v", when, q, err)
	}
	for d := range deliveries { // what was delivered before cancel-ok
		got = append(got, d)
	}
	if ready, _ := queueCounts(t, ch, q); ready != 0 || len(got) != q0.Messages {
		t.Errorf("%s: queue %s: queue.declare-ok counted %d messages, but %d were delivered and %d more are ready", when, q, q0.Messages, len(got), ready)
	}

	var problems []string
	problem := func(format string, args ...any) {
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	count := map[string]int{}
	badProps := 0
	for _, d := range got {
		c, known := m.msgs[d.MessageId]
		if !known || m.fates[crashKey{q, d.MessageId}] == nil {
			problem("a message the test never published to %s: message-id %q, body %.40q", q, d.MessageId, d.Body)
			continue
		}
		count[d.MessageId]++
		if d.Redelivered != wantRedelivered {
			problem("%s: redelivered=%v, want %v", d.MessageId, d.Redelivered, wantRedelivered)
		}
		if want := c.publishing(); !sameMessage(want, d) {
			if badProps++; badProps <= 3 {
				checkProperties(t, when+": "+q, want, d)
			}
		}
	}
	if badProps > 0 {
		problem("%d messages came back with other properties, headers or body than published", badProps)
	}

	var must, mayAcked, mayUnconfirmed, foundAcked, foundUnconfirmed, dups int
	for k, f := range m.fates {
		if k.queue != q {
			continue
		}
		n := count[k.id]
		switch {
		case f.gone != "":
			if n > 0 {
				problem("%s found %d times, but it was %s", k.id, n, f.gone)
			}
		case f.confirmed && !f.ackSent:
			must++
			if n != 1 {
				problem("%s was confirmed and never acked, but found %d times, want exactly once", k.id, n)
			}
		case f.confirmed:
			mayAcked++
			if n > 0 {
				foundAcked++
			}
			if n > 1 {
				problem("%s was confirmed, but found %d times, want at most once", k.id, n)
			}
		default:
			mayUnconfirmed++
			if n > 0 {
				foundUnconfirmed++
			}
			if n > 1 {
				dups++
			}
		}
	}
	if n := len(problems); n > 0 {
		slices.Sort(problems)
		const show = 15
		more := ""
		if n > show {
			more = fmt.Sprintf("\n… and %d more", n-show)
			problems = problems[:show]
		}
		t.Errorf("%s: queue %s (%d messages): %d problems:\n%s%s", when, q, len(got), n, strings.Join(problems, "\n"), more)
	}

	// Settle what was found and reset the model to it.
	keep = keep && dups == 0
	if keep {
		if err := ch.Close(); err != nil { // requeues everything delivered
			t.Fatalf("%s: close the channel on %s to requeue: %v", when, q, err)
		}
	} else {
		if len(got) > 0 {
			if err := ch.Ack(got[len(got)-1].DeliveryTag, true); err != nil {
				t.Fatalf("%s: ack the messages in %s: %v", when, q, err)
			}
		}
		marks, err := crashMarkerChannel(conn)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err = crashMark(ctx, marks)
		cancel()
		if err != nil {
			t.Fatalf("%s: marker after acking %s: %v", when, q, err)
		}
		_ = marks.Close()
		_ = ch.Close()
	}
	for k, f := range m.fates {
		if k.queue != q || f.gone != "" {
			continue
		}
		switch {
		case count[k.id] == 0:
			f.gone = "missing at an earlier restart"
		case keep:
			*f = crashFate{confirmed: true}
		default:
			f.gone = "acked durably at an earlier verification"
		}
	}
	summary := fmt.Sprintf("%s %d (confirmed %d", q, len(got), must)
	if mayAcked > 0 {
		summary += fmt.Sprintf(", acked but not known durable %d of %d", foundAcked, mayAcked)
	}
	if mayUnconfirmed > 0 {
		summary += fmt.Sprintf(", unconfirmed %d of %d", foundUnconfirmed, mayUnconfirmed)
	}
	if dups > 0 {
		summary += fmt.Sprintf(", %d duplicated", dups)
	}
	if keep {
		return summary + ") requeued"
	}
	return summary + ") acked"
}

// crashMarkerChannel opens a channel in confirm mode for crashMark.
func crashMarkerChannel(conn *amqp.Connection) (*amqp.Channel, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open marker channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		return nil, fmt.Errorf("confirm.select on the marker channel: %w", err)
	}
	return ch, nil
}

// errNacked is a basic.nack.
var errNacked = errors.New("nacked")

// crashMark publishes a persistent message to the durable markers queue on ch and waits for its
// confirm. Once it is confirmed, everything sent before it on the same connection (acks,
// declarations) has been written durably.
func crashMark(ctx context.Context, ch *amqp.Channel) error {
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", crashMarkers, false, false,
		amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte("marker")})
	if err != nil {
		return fmt.Errorf("publish marker: %w", err)
	}
	select {
	case <-dc.Done():
	case <-ctx.Done():
		return fmt.Errorf("marker confirm: %w", ctx.Err())
	}
	if !dc.Acked() {
		return fmt.Errorf("marker: %w", errNacked)
	}
	return nil
}

// crashPubStats are one publisher's counts.
type crashPubStats struct {
	published, confirmed, nacked int
	early                        error // a failure before the kill
}

// beforeKill returns err if killed is not closed yet: a failure that the kill cannot explain.
func beforeKill(killed <-chan struct{}, err error) error {
	select {
	case <-killed:
		return nil
	default:
		return err
	}
}

// crashPublish publishes persistent messages named after first (round, publisher, fanout) until
// the connection dies, keeping crashInFlight unconfirmed, and records each confirm in m.
// killed is closed just before the broker is killed.
func crashPublish(ctx context.Context, url string, first crashMsg, m *crashModel, killed <-chan struct{}) (st crashPubStats) {
	conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(timeout)})
	if err != nil {
		st.early = beforeKill(killed, err)
		return st
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err == nil {
		err = ch.Confirm(false)
	}
	if err != nil {
		st.early = beforeKill(killed, fmt.Errorf("confirm.select: %w", err))
		return st
	}
	exchange, key, queues := first.route()
	type inFlight struct {
		dc *amqp.DeferredConfirmation
		id string
	}
	var window []inFlight
	settle := func(f inFlight) bool {
		select {
		case <-f.dc.Done():
		case <-ctx.Done():
			return false
		}
		if f.dc.Acked() {
			m.confirmed(f.id, queues)
			st.confirmed++
		} else if beforeKill(killed, errNacked) != nil { // otherwise the confirm may be lost with the connection
			st.nacked++
		}
		return true
	}
	for seq := 0; ctx.Err() == nil; seq++ {
		msg := first
		msg.seq = seq
		m.published(msg, queues)
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, false, false, msg.publishing())
		if err != nil {
			st.early = beforeKill(killed, fmt.Errorf("publish: %w", err))
			break
		}
		st.published++
		window = append(window, inFlight{dc, msg.id()})
		if len(window) == crashInFlight {
			if !settle(window[0]) {
				break
			}
			window = window[1:]
		}
	}
	for _, f := range window {
		if !settle(f) {
			break
		}
	}
	return st
}

// crashConsStats are the consumer's counts.
type crashConsStats struct {
	received, ackSent, ackDurable, unknown int
	early                                  error // a failure before the kill
}

// crashConsume consumes from queues (one channel each, so that an ack with multiple set covers
// only that queue's deliveries) and, after every batch of random size, acks the batch and
// publishes a marker; when the marker is confirmed, the batch is durably acked. killed is
// closed just before the broker is killed.
func crashConsume(ctx context.Context, url string, queues []string, seed uint64, m *crashModel, killed <-chan struct{}) (st crashConsStats) {
	rng := rand.New(rand.NewPCG(seed, 0xc0))
	conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(timeout)})
	if err != nil {
		st.early = beforeKill(killed, err)
		return st
	}
	defer conn.Close()
	marks, err := crashMarkerChannel(conn)
	if err != nil {
		st.early = beforeKill(killed, err)
		return st
	}
	type sub struct {
		queue      string
		ch         *amqp.Channel
		deliveries <-chan amqp.Delivery
		pending    []crashKey
		last       uint64
	}
	subs := make([]*sub, 0, 2)
	for _, q := range queues {
		ch, err := conn.Channel()
		if err == nil {
			err = ch.Qos(2*crashMaxBatch, 0, false)
		}
		var d <-chan amqp.Delivery
		if err == nil {
			d, err = ch.Consume(q, "", false, false, false, false, nil)
		}
		if err != nil {
			st.early = beforeKill(killed, fmt.Errorf("consume from %s: %w", q, err))
			return st
		}
		subs = append(subs, &sub{queue: q, ch: ch, deliveries: d})
	}
	var second <-chan amqp.Delivery // nil when there is one queue
	if len(subs) > 1 {
		second = subs[1].deliveries
	}
	batch, pending := 1+rng.IntN(crashMaxBatch), 0
	for {
		var (
			d  amqp.Delivery
			ok bool
			s  *sub
		)
		select {
		case d, ok = <-subs[0].deliveries:
			s = subs[0]
		case d, ok = <-second:
			s = subs[1]
		case <-ctx.Done():
			return st
		}
		if !ok {
			st.early = beforeKill(killed, fmt.Errorf("the consumer on %s was closed", s.queue))
			return st
		}
		st.received++
		s.pending = append(s.pending, crashKey{s.queue, d.MessageId})
		s.last = d.DeliveryTag
		if pending++; pending < batch {
			continue
		}
		var keys []crashKey
		for _, s := range subs {
			keys = append(keys, s.pending...)
		}
		st.unknown += m.acked(keys, false)
		st.ackSent += len(keys)
		for _, s := range subs {
			if len(s.pending) == 0 {
				continue
			}
			if err := s.ch.Ack(s.last, true); err != nil {
				st.early = beforeKill(killed, fmt.Errorf("ack on %s: %w", s.queue, err))
				return st
			}
			s.pending = nil
		}
		if err := crashMark(ctx, marks); err != nil {
			st.early = beforeKill(killed, err)
			return st
		}
		m.acked(keys, true)
		st.ackDurable += len(keys)
		batch, pending = 1+rng.IntN(crashMaxBatch), 0
	}
}
