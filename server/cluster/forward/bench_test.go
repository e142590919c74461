package forward

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// benchLocal stores nothing and confirms at once: what is measured is the forwarding.
type benchLocal struct {
	*fakeLocal
	n atomic.Int64
}

func (l *benchLocal) Publish(vhost, queue string, m *Message, confirm bool, done func(error, func())) {
	l.n.Add(1)
	done(nil, nil)
}

// BenchmarkForwardPublishConfirm: publishes with confirms from node B to a queue on node A
// through raftmux on loopback, with a window of unconfirmed publishes (like a client's
// confirm window), reported as publishes per second.
func BenchmarkForwardPublishConfirm(b *testing.B) {
	for _, size := range []int{16, 1024} {
		for _, window := range []int{1, 64, 512} {
			b.Run(fmt.Sprintf("body=%d/window=%d", size, window), func(b *testing.B) {
				local := &benchLocal{fakeLocal: newFakeLocal()}
				p := newPair(b, local)
				m := &Message{Exchange: "x", RoutingKey: "q", Properties: []byte{0x10, 0, 2}, Body: make([]byte, size), Persistent: true}
				sem := make(chan struct{}, window)
				fail := make(chan error, 1)
				done := func(err error) {
					if err != nil {
						select {
						case fail <- err:
						default:
						}
					}
					<-sem
				}
				b.SetBytes(int64(size))
				b.ResetTimer()
				start := time.Now()
				for range b.N {
					sem <- struct{}{}
					p.client.Publish(p.addr(), "/", "q", m, true, done)
				}
				for range window {
					sem <- struct{}{}
				}
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
				select {
				case err := <-fail:
					b.Fatal(err)
				default:
				}
				if got := local.n.Load(); got != int64(b.N) {
					b.Fatalf("A took %d of %d publishes", got, b.N)
				}
			})
		}
	}
}
