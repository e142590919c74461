package server

import (
	"testing"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/server/cluster/forward"
	"github.com/warrenmq/warren/server/vhost"
	"github.com/warrenmq/warren/store"
)

// BenchmarkForwardedPublishConfirm is BenchmarkPublishConfirm's publisher on another node:
// 64 confirmed publishes in flight, 1 KiB bodies, no consumer, forwarded over the cluster
// transport into this broker's queue (transient messages to an in-memory queue; persistent
// ones to a durable queue in a store without fsync). ns/op is per confirmed message.
func BenchmarkForwardedPublishConfirm(b *testing.B) {
	for _, mode := range []string{"transient", "persistent"} {
		b.Run(mode, func(b *testing.B) {
			cfg := Config{}
			if mode == "persistent" {
				st, err := store.Open(store.Options{Dir: b.TempDir(), NoSync: true, Logger: zerolog.Nop()})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = st.Close() })
				cfg.Store = st
			}
			s := New(cfg)
			if err := s.Recover(); err != nil {
				b.Fatal(err)
			}
			if _, err := s.DeclareQueueAs("guest", "/", vhost.QueueDecl{Name: "q", Durable: mode == "persistent"}); err != nil {
				b.Fatal(err)
			}
			n := startForwardNodes(b, s)
			p := amqpwire.Properties{}
			if mode == "persistent" {
				p.Flags, p.DeliveryMode = amqpwire.FlagDeliveryMode, 2
			}
			m := &forward.Message{RoutingKey: "q", Properties: p.Append(nil), Body: make([]byte, 1024), Persistent: mode == "persistent"}
			sem := make(chan struct{}, 64)
			failed := make(chan error, 1)
			done := func(err error) {
				if err != nil {
					select {
					case failed <- err:
					default:
					}
				}
				<-sem
			}
			b.SetBytes(int64(len(m.Body)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				sem <- struct{}{}
				n.client.Publish(n.a.Addr(), "/", "q", m, true, done)
			}
			for range cap(sem) {
				sem <- struct{}{}
			}
			b.StopTimer()
			select {
			case err := <-failed:
				b.Fatal(err)
			default:
			}
		})
	}
}
