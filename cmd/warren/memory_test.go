package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/server/servertest"
)

// rawPublisher is a client that speaks AMQP frame by frame, so it can stop in the middle of a
// message body.
type rawPublisher struct {
	nc net.Conn
	r  *amqpwire.FrameReader
	w  *amqpwire.FrameWriter
}

func dialRaw(t *testing.T, addr string) *rawPublisher {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	p := &rawPublisher{nc: nc, r: amqpwire.NewFrameReader(nc, 1<<20), w: amqpwire.NewFrameWriter(nc)}
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write(amqpwire.ProtocolHeader); err != nil {
		t.Fatal(err)
	}
	p.expect(t, "connection.start")
	p.send(t, 0, &amqpwire.ConnectionStartOk{Mechanism: "PLAIN", Response: "\x00guest\x00guest", Locale: "en_US"})
	p.expect(t, "connection.tune")
	p.send(t, 0, &amqpwire.ConnectionTuneOk{ChannelMax: 2047, FrameMax: 131072})
	p.send(t, 0, &amqpwire.ConnectionOpen{VirtualHost: "/"})
	p.expect(t, "connection.open-ok")
	return p
}

func (p *rawPublisher) send(t *testing.T, ch uint16, m amqpwire.Method) {
	t.Helper()
	p.w.WriteMethod(ch, m)
	if err := p.w.Flush(); err != nil {
		t.Fatal(err)
	}
}

func (p *rawPublisher) expect(t *testing.T, name string) {
	t.Helper()
	for {
		f, err := p.r.ReadFrame()
		if err != nil {
			t.Fatalf("waiting for %s: %v", name, err)
		}
		if f.Type != amqpwire.FrameMethod {
			continue
		}
		m, err := amqpwire.DecodeMethod(f.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if m.MethodName() == name {
			return
		}
		t.Fatalf("got %s, want %s", m.MethodName(), name)
	}
}

// frame writes one raw frame.
func frame(typ uint8, ch uint16, payload []byte) []byte {
	b := make([]byte, 7, 8+len(payload))
	b[0] = typ
	binary.BigEndian.PutUint16(b[1:], ch)
	binary.BigEndian.PutUint32(b[3:], uint32(len(payload)))
	b = append(b, payload...)
	return append(b, amqpwire.FrameEnd)
}

// startHalfBody opens channel ch and sends basic.publish and a content header announcing size
// bytes of body.
func (p *rawPublisher) startHalfBody(t *testing.T, ch uint16, queue string, size uint64) {
	t.Helper()
	p.send(t, ch, &amqpwire.ChannelOpen{})
	p.expect(t, "channel.open-ok")
	p.w.WriteMethod(ch, &amqpwire.BasicPublish{RoutingKey: queue})
	if err := p.w.Flush(); err != nil {
		t.Fatal(err)
	}
	h := make([]byte, 14)
	binary.BigEndian.PutUint16(h, amqpwire.ClassBasic)
	binary.BigEndian.PutUint64(h[4:], size)
	if _, err := p.nc.Write(frame(amqpwire.FrameHeader, ch, h)); err != nil {
		t.Fatal(err)
	}
}

// anonSampler records the highest RssAnon of a process: its resident memory that is not a
// mapped file's page cache (the store's mapped log files are page cache the kernel may drop at
// any time; VmHWM counts them too).
type anonSampler struct {
	stopc chan struct{}
	done  chan int64
}

func sampleAnonRSS(t *testing.T, pid int) *anonSampler {
	s := &anonSampler{stopc: make(chan struct{}), done: make(chan int64, 1)}
	go func() {
		var peak int64
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if v := procStatus(pid, "RssAnon:"); v > peak {
				peak = v
			}
			select {
			case <-s.stopc:
				s.done <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *anonSampler) stop() int64 {
	close(s.stopc)
	return <-s.done
}

// procStatus reads one kB field of /proc/PID/status, in bytes; 0 if it cannot.
func procStatus(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// peakRSS is the process's VmHWM in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	v := procStatus(pid, "VmHWM:")
	if v == 0 {
		t.Fatal("no VmHWM")
	}
	return v
}

// TestMemoryLimitHoldsUnderHalfSentBodiesAndFillingQueues attacks the real broker the two ways
// that exhausted its memory before the memory alarm: 60 channels each sending most of a 16 MiB
// body and stopping, and 40 queues without consumers filled by confirming publishers. With a
// 128 MiB limit the broker's peak RSS must stay under twice the limit, every confirmed message
// must be in its queue, and a consumer must still drain a queue while the alarm lasts.
func TestMemoryLimitHoldsUnderHalfSentBodiesAndFillingQueues(t *testing.T) {
	t.Run("half-sent bodies and filling queues", func(t *testing.T) { memoryAttack(t, true) })
	// Without the bodies holding the alarm, the queues page out from half the limit and
	// their publishers go on: more is confirmed than the limit could hold in memory.
	t.Run("filling queues", func(t *testing.T) { memoryAttack(t, false) })
}

func memoryAttack(t *testing.T, halfBodies bool) {
	const limit = 128 << 20
	cmd, addr, lines := startBroker(t, "--memory-limit", "128MiB")
	go func() {
		for l := range lines {
			if os.Getenv("WARREN_TEST_LOG") != "" {
				fmt.Println(l)
			}
		}
	}()
	url := "amqp://guest:guest@" + addr + "/"

	admin, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ach, err := admin.Channel()
	if err != nil {
		t.Fatal(err)
	}
	const queues = 40
	for i := 0; i < queues; i++ {
		if _, err := ach.QueueDeclare(fmt.Sprintf("fill-%d", i), false, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}

	// A queue a consumer-only connection drains while the attack lasts.
	pre, err := ach.QueueDeclare("drain-me", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if err := ach.PublishWithContext(context.Background(), "", pre.Name, false, false, amqp.Publishing{Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	servertest.WaitReady(t, ach, pre.Name, 100)

	sampler := sampleAnonRSS(t, cmd.Process.Pid)
	// The half-sent bodies attack for 4 s. The filling publishers go on until they have had
	// confirms for well over twice the limit (the queues must page out to take it), however
	// slowly a loaded machine lets them, for at most a minute.
	attack := 4 * time.Second
	if !halfBodies {
		attack = time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), attack)
	defer cancel()
	var confirmedBytes atomic.Int64
	target := int64(2*limit) + int64(limit)/4
	var wg sync.WaitGroup

	// 60 half-sent bodies on 6 connections: each channel announces 16 MiB and sends 15.
	chunk := make([]byte, 128<<10-8)
	var raws []*rawPublisher
	for c := 0; halfBodies && c < 6; c++ { // every header first: a header sent during the alarm is held
		p := dialRaw(t, addr)
		for ch := uint16(1); ch <= 10; ch++ {
			p.startHalfBody(t, ch, "fill-0", 16<<20)
		}
		raws = append(raws, p)
	}
	for _, p := range raws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = p.nc.SetWriteDeadline(time.Now().Add(4 * time.Second))
			for sent := 0; sent < 15<<20; sent += len(chunk) {
				for ch := uint16(1); ch <= 10; ch++ {
					if _, err := p.nc.Write(frame(amqpwire.FrameBody, ch, chunk)); err != nil {
						return // blocked by the alarm until the deadline: what we want
					}
				}
			}
		}()
	}

	// 40 queues filled by confirming publishers, 64 KiB messages.
	confirmed := make([]int, queues)
	body := make([]byte, 64<<10)
	for i := 0; i < queues; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			// A blocked publisher's socket write never returns: close the socket at the end.
			conn, err := amqp.DialConfig(url, amqp.Config{Dial: func(network, addr string) (net.Conn, error) {
				nc, err := net.Dial(network, addr)
				if err == nil {
					context.AfterFunc(ctx, func() { _ = nc.Close() })
				}
				return nc, err
			}})
			if err != nil {
				t.Error(err)
				return
			}
			ch, err := conn.Channel()
			if err != nil || ch.Confirm(false) != nil {
				t.Error("channel in confirm mode", err)
				return
			}
			for ctx.Err() == nil {
				dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", fmt.Sprintf("fill-%d", i), false, false, amqp.Publishing{Body: body})
				if err != nil {
					return
				}
				if ok, err := dc.WaitContext(ctx); err != nil || !ok {
					return
				}
				confirmed[i]++
				if confirmedBytes.Add(int64(len(body))) >= target && !halfBodies {
					cancel()
				}
			}
		}(i)
	}

	consumer, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	cch, err := consumer.Channel()
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for ; got < 100; got++ {
		d, ok, err := cch.Get(pre.Name, false)
		if err != nil || !ok {
			break
		}
		if err := d.Ack(false); err != nil {
			t.Fatal(err)
		}
	}
	if got < 100 {
		t.Errorf("consumer-only connection got %d of 100 messages during the attack", got)
	}
	wg.Wait()

	hwm := peakRSS(t, cmd.Process.Pid)
	peakAnon := sampler.stop()
	total := 0
	for i := 0; i < queues; i++ {
		q, err := cch.QueueDeclarePassive(fmt.Sprintf("fill-%d", i), false, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if q.Messages < confirmed[i] {
			t.Errorf("queue fill-%d holds %d messages, %d were confirmed", i, q.Messages, confirmed[i])
		}
		total += confirmed[i]
	}
	t.Logf("peak anonymous RSS %d MiB (VmHWM with the store's mapped files %d MiB) with a %d MiB limit; %d messages (%d MiB) confirmed into %d queues",
		peakAnon>>20, hwm>>20, limit>>20, total, total*len(body)>>20, queues)
	if peakAnon >= 2*limit {
		t.Errorf("peak anonymous RSS %d MiB, not under twice the %d MiB memory limit", peakAnon>>20, limit>>20)
	}
	// The store's mapped files count in RSS too: while memory is over the paging threshold they
	// are paged out eagerly, so the whole peak stays under twice the limit as well.
	if hwm >= 2*limit {
		t.Errorf("peak RSS (VmHWM) %d MiB, not under twice the %d MiB memory limit", hwm>>20, limit>>20)
	}
	if total == 0 {
		t.Error("no publish confirmed at all")
	}
	if !halfBodies && total*len(body) < 2*limit {
		t.Errorf("only %d MiB confirmed: the queues did not page out to make room", total*len(body)>>20)
	}
}
