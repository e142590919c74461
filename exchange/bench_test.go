package exchange

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
)

var (
	benchMarkets = []string{"nyse", "nasdaq", "lse", "tse", "hkex", "sse", "euronext", "tsx",
		"bse", "nse", "asx", "six", "krx", "jse", "b3", "moex"}
	benchLevels = []string{"debug", "info", "warn", "error"}
)

// benchSymbol names the i-th ticker: "A", "B", ..., "BA", ... in upper case.
func benchSymbol(i int) string {
	var b strings.Builder
	for {
		b.WriteByte(byte('A' + i%26))
		i /= 26
		if i == 0 {
			break
		}
	}
	return b.String()
}

// topicBenchKeys returns n binding keys shaped like real topic setups: mostly literal
// "stock.<market>.<SYM>" and per-symbol "*" patterns, service patterns with "#", and a few
// broad subscribers ("stock.<market>.*", "*.<market>.#").
func topicBenchKeys(n int, r *rand.Rand) []string {
	symbols := max(n/8, 16)
	services := max(n/1000, 4)
	keys := make([]string, n)
	for i := range keys {
		m := benchMarkets[r.IntN(len(benchMarkets))]
		sym := benchSymbol(r.IntN(symbols))
		svc := fmt.Sprintf("svc%d", r.IntN(services))
		switch p := r.IntN(10_000); {
		case p < 6500:
			keys[i] = "stock." + m + "." + sym
		case p < 8000:
			keys[i] = "stock.*." + sym
		case p < 8500:
			keys[i] = "stock." + m + "." + sym + ".#"
		case p < 9200:
			keys[i] = "app." + svc + ".#"
		case p < 9980:
			keys[i] = "#." + svc + ".error"
		case p < 9990:
			keys[i] = "stock." + m + ".*"
		default:
			keys[i] = "*." + m + ".#"
		}
	}
	return keys
}

// topicBenchRoutingKeys returns routing keys published to such an exchange, hits and misses.
func topicBenchRoutingKeys(n int, r *rand.Rand) []string {
	symbols := max(n/8, 16)
	services := max(n/1000, 4)
	keys := make([]string, 1024)
	for i := range keys {
		svc := fmt.Sprintf("svc%d", r.IntN(services))
		switch p := r.IntN(10); {
		case p < 7:
			keys[i] = "stock." + benchMarkets[r.IntN(len(benchMarkets))] + "." + benchSymbol(r.IntN(symbols))
		case p < 9:
			keys[i] = "app." + svc + "." + benchLevels[r.IntN(len(benchLevels))]
		default:
			keys[i] = "app." + svc + ".db.error"
		}
	}
	return keys
}

// buildRouter binds n keys to n/10 queues (at least one) and returns a function that reports
// how long that took and how much heap the router holds (call it after the timed loop: the
// benchmark loop drops metrics reported before it).
func buildRouter(b *testing.B, kind string, keys []string, args func(i int) amqpwire.Table) (Router, func()) {
	b.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	r := newRouter(b, kind)
	queues := max(len(keys)/10, 1)
	for i, k := range keys {
		var a amqpwire.Table
		if args != nil {
			a = args(i)
		}
		if _, err := r.Bind(binding.Binding{Source: "x", Dest: q(fmt.Sprintf("q%d", i%queues)), RoutingKey: k, Args: a}); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / (1 << 20)
	return r, func() {
		b.ReportMetric(float64(elapsed.Milliseconds()), "build-ms")
		b.ReportMetric(heap, "heap-MB")
	}
}

func BenchmarkTopicRoute(b *testing.B) {
	for _, n := range []int{10, 10_000, 1_000_000} {
		b.Run(fmt.Sprintf("bindings=%d", n), func(b *testing.B) {
			r := rand.New(rand.NewPCG(uint64(n), 7))
			x, report := buildRouter(b, KindTopic, topicBenchKeys(n, r), nil)
			rks := topicBenchRoutingKeys(n, r)
			out := make([]binding.Destination, 0, 256)
			routed := 0
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				out = x.Route(rks[i%len(rks)], nil, out[:0])
				routed += len(out)
				i++
			}
			b.ReportMetric(float64(routed)/float64(i), "dests/op")
			report()
		})
	}
}

func BenchmarkTopicRouteParallel(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 7))
	x, _ := buildRouter(b, KindTopic, topicBenchKeys(10_000, r), nil)
	rks := topicBenchRoutingKeys(10_000, r)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		out := make([]binding.Destination, 0, 256)
		i := 0
		for pb.Next() {
			out = x.Route(rks[i%len(rks)], nil, out[:0])
			i++
		}
	})
}

func BenchmarkDirectRoute(b *testing.B) {
	const n = 10_000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("rpc.reply.%d", i)
	}
	x, _ := buildRouter(b, KindDirect, keys, nil)
	out := make([]binding.Destination, 0, 8)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		out = x.Route(keys[i%n], nil, out[:0])
		i++
	}
	if len(out) != 1 {
		b.Fatalf("routed to %d", len(out))
	}
}

func BenchmarkFanoutRoute(b *testing.B) {
	x := newRouter(b, KindFanout)
	for i := range 8 {
		bind(b, x, q(fmt.Sprintf("q%d", i)), "", nil)
	}
	out := make([]binding.Destination, 0, 8)
	b.ReportAllocs()
	for b.Loop() {
		out = x.Route("ignored", nil, out[:0])
	}
	if len(out) != 8 {
		b.Fatalf("routed to %d", len(out))
	}
}

// BenchmarkRouteParallel compares the read paths under concurrent publishers: fanout reads
// an atomic snapshot, the others take a per-exchange read lock.
func BenchmarkRouteParallel(b *testing.B) {
	for _, kind := range []string{KindDirect, KindFanout} {
		b.Run(kind, func(b *testing.B) {
			x := newRouter(b, kind)
			for i := range 8 {
				bind(b, x, q(fmt.Sprintf("q%d", i)), "k", nil)
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				out := make([]binding.Destination, 0, 8)
				for pb.Next() {
					out = x.Route("k", nil, out[:0])
				}
			})
		})
	}
}

func BenchmarkHeadersRoute(b *testing.B) {
	formats := []string{"pdf", "doc", "xls", "txt", "csv"}
	for _, n := range []int{10, 10_000, 1_000_000} {
		b.Run(fmt.Sprintf("bindings=%d", n), func(b *testing.B) {
			r := rand.New(rand.NewPCG(uint64(n), 9))
			args := func(i int) amqpwire.Table {
				mode := "all"
				if i%3 == 0 {
					mode = "any"
				}
				return table(b, "x-match", mode,
					"format", formats[r.IntN(len(formats))],
					"region", fmt.Sprintf("r%d", r.IntN(20)),
					"priority", int32(r.IntN(5)))
			}
			keys := make([]string, n)
			x, report := buildRouter(b, KindHeaders, keys, args)
			msgs := make([]amqpwire.Table, 64)
			for i := range msgs {
				msgs[i] = table(b, "format", formats[r.IntN(len(formats))],
					"region", fmt.Sprintf("r%d", r.IntN(20)),
					"priority", int64(r.IntN(5)),
					"x-trace-id", "0af7651916cd43dd8448eb211c80319c")
			}
			out := make([]binding.Destination, 0, n)
			routed := 0
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				out = x.Route("", msgs[i%len(msgs)], out[:0])
				routed += len(out)
				i++
			}
			b.ReportMetric(float64(routed)/float64(i), "dests/op")
			report()
		})
	}
}
