package mgmt

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/server/vhost"
)

// BenchmarkSample10kQueues is one rate sample of a broker with 10,000 queues: what the
// sampler spends every 5 s.
func BenchmarkSample10kQueues(b *testing.B) {
	srv := server.New(server.Config{Logger: zerolog.Nop(), MemoryLimit: 1 << 40})
	if err := srv.Recover(); err != nil {
		b.Fatal(err)
	}
	v := srv.Vhosts()[0]
	for i := range 10000 {
		if _, err := v.DeclareQueue(nil, vhost.QueueDecl{Name: fmt.Sprintf("q%d", i)}); err != nil {
			b.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := Handler(ctx, srv, Identity{Node: "warren@bench", StatsInterval: time.Hour}, zerolog.Nop()).(*api)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		a.takeSample()
	}
}
