package vhost

import (
	"strconv"
	"testing"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/server/queue"
	"github.com/warrenmq/warren/store"
)

// BenchmarkPublishDedup measures Vhost.Publish of a message with an x-deduplication-header
// to one queue: without deduplication, with it and a new id every time (the cache full, so
// every publish also evicts), with it and the same id every time (every publish a duplicate),
// and with a durable queue whose cache is in a store (no fsync). The queue is purged as it
// goes so that its size does not count.
func BenchmarkPublishDedup(b *testing.B) {
	for _, tc := range []struct {
		name    string
		args    map[string]any
		durable bool
		sameID  bool
	}{
		{"off", nil, false, false},
		{"on-new-ids", map[string]any{"x-message-deduplication": true, "x-cache-size": int32(10_000)}, false, false},
		{"on-duplicates", map[string]any{"x-message-deduplication": true}, false, true},
		{"on-durable-new-ids", map[string]any{"x-message-deduplication": true, "x-cache-size": int32(10_000)}, true, false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var st *store.Store
			if tc.durable {
				var err error
				if st, err = store.Open(store.Options{Dir: b.TempDir(), NoSync: true, Logger: zerolog.Nop()}); err != nil {
					b.Fatal(err)
				}
				defer st.Close()
			}
			v := New("/", zerolog.Nop(), st, queue.Window{})
			args, err := amqpwire.NewTable(tc.args)
			if err != nil {
				b.Fatal(err)
			}
			q, err := v.DeclareQueue(nil, QueueDecl{Name: "q", Durable: tc.durable, Args: args})
			if err != nil {
				b.Fatal(err)
			}
			x, _ := v.Exchange("")
			msgs := make([]*queue.Message, 4096)
			for i := range msgs {
				h, _ := amqpwire.NewTable(map[string]any{"x-deduplication-header": "order-" + strconv.Itoa(i)})
				p := amqpwire.Properties{Flags: amqpwire.FlagHeaders, Headers: h}
				msgs[i] = &queue.Message{RoutingKey: "q", Properties: p, RawProperties: p.Append(nil), Body: make([]byte, 256)}
			}
			keys := []string{"q"}
			var s Scratch
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				m := msgs[0]
				if !tc.sameID {
					if i%len(msgs) == 0 && i > 0 {
						b.StopTimer()
						// New ids for the next round: rewrite the header values.
						for j := range msgs {
							h, _ := amqpwire.NewTable(map[string]any{"x-deduplication-header": strconv.Itoa(i) + "-" + strconv.Itoa(j)})
							msgs[j].Properties.Headers = h
						}
						q.Core().Purge()
						b.StartTimer()
					}
					m = msgs[i%len(msgs)]
				}
				v.Publish(x, m, keys, nil, &s)
			}
			b.StopTimer()
			if st != nil {
				if err := st.Flush(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
