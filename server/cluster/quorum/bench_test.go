package quorum

import (
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/server/cluster/raftmux"
	"github.com/warrenmq/warren/server/queue"
	"github.com/warrenmq/warren/store"
)

var (
	idleGroups = flag.Int("quorum.idle-groups", 1000, "groups in BenchmarkIdleGroups")
	idleFor    = flag.Duration("quorum.idle-for", 20*time.Second, "how long BenchmarkIdleGroups measures")
	idleHeap   = flag.String("quorum.heap-profile", "", "file for a heap profile of BenchmarkIdleGroups's idle groups")
	idleHB     = flag.Duration("quorum.heartbeat-timeout", 0, "HeartbeatTimeout (and ElectionTimeout, CommitTimeout) in BenchmarkIdleGroups; 0 is the default timing")
)

// BenchmarkIdleGroups measures what idle quorum queues cost: -quorum.idle-groups groups
// (1,000 by default) on three in-process nodes with the default timing, every group with a
// leader and no traffic. It reports the CPU the process used per second of wall time over
// -quorum.idle-for (all three nodes together) and the process's RSS. Run it with
// -benchtime=1x; docs/performance.md has the figures.
func BenchmarkIdleGroups(b *testing.B) {
	n := *idleGroups
	var timing Timing
	if hb := *idleHB; hb > 0 {
		timing = Timing{HeartbeatTimeout: hb, ElectionTimeout: hb, LeaderLeaseTimeout: hb / 2, CommitTimeout: hb}
	}
	type node struct {
		st  *store.Store
		mux *raftmux.Mux
		hub *Hub
		gs  []*Group
	}
	var members []Member
	var lns []net.Listener
	for i := 0; i < 3; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		lns = append(lns, ln)
		members = append(members, Member{Name: fmt.Sprintf("n%d", i+1), Address: ln.Addr().String()})
	}
	nodes := make([]*node, 3)
	for i := range nodes {
		dir := b.TempDir()
		st, err := store.Open(store.Options{Dir: dir, NoSync: true, Logger: zerolog.Nop()})
		if err != nil {
			b.Fatal(err)
		}
		mux := raftmux.New(raftmux.Config{Listener: lns[i], Node: members[i].Name, Secret: []byte("0123456789abcdef"), Logger: zerolog.Nop()})
		hub, err := NewHub(mux, zerolog.Nop())
		if err != nil {
			b.Fatal(err)
		}
		nodes[i] = &node{st: st, mux: mux, hub: hub}
		for q := 1; q <= n; q++ {
			if err := st.PutQueue(&store.Queue{Vhost: "/", Name: fmt.Sprint("q", q), ID: uint64(q)}); err != nil {
				b.Fatal(err)
			}
			g, err := Start(Config{ID: uint64(q), Name: fmt.Sprint("q", q), Self: members[i].Name, Members: members,
				Hub: hub, Store: st, DataDir: dir, Logger: zerolog.Nop(), Timing: timing,
				Options: func() queue.Options { return queue.Options{Features: queue.NoFeatures} }})
			if err != nil {
				b.Fatal(err)
			}
			nodes[i].gs = append(nodes[i].gs, g)
		}
	}
	defer func() {
		for _, nd := range nodes {
			for _, g := range nd.gs {
				_ = g.Close()
			}
			_ = nd.hub.Close()
			_ = nd.mux.Close()
			_ = nd.st.Close()
		}
	}()
	start := time.Now()
	for q := 0; q < n; q++ {
		for {
			led := 0
			for _, nd := range nodes {
				if nd.gs[q].Core() != nil {
					led++
				}
			}
			if led == 1 {
				break
			}
			if time.Since(start) > 5*time.Minute {
				b.Fatalf("group %d has no single leader after %s", q+1, time.Since(start))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	b.Logf("%d groups on 3 nodes elected their leaders in %s", n, time.Since(start).Round(time.Millisecond))
	time.Sleep(5 * time.Second) // let the elections' traffic settle
	runtime.GC()
	b.ResetTimer()
	cpu0, wall0 := cpuTime(b), time.Now()
	time.Sleep(*idleFor)
	cpu, wall := cpuTime(b)-cpu0, time.Since(wall0)
	b.StopTimer()
	b.ReportMetric(cpu.Seconds()/wall.Seconds()*100, "%cpu")
	b.ReportMetric(float64(rssBytes(b))/(1<<20), "MiB-rss")
	b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines")
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "MiB-heap")
	b.ReportMetric(float64(ms.StackInuse)/(1<<20), "MiB-stacks")
	if *idleHeap != "" {
		f, err := os.Create(*idleHeap)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.WriteHeapProfile(f); err != nil {
			b.Fatal(err)
		}
	}
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func rssBytes(b *testing.B) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkConfirmedPublish publishes 1 KiB messages through the leader's core of a
// three-member group (in-process, stores synced to disk), with up to 256 unconfirmed at a
// time, and reports confirmed messages per second.
func BenchmarkConfirmedPublish(b *testing.B) {
	c := newBenchCluster(b)
	_, q := c.leader()
	body := make([]byte, 1024)
	sem := make(chan struct{}, 256)
	errs := make(chan error, 1)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		sem <- struct{}{}
		q.Publish(&queue.Message{RoutingKey: "qq", Body: body, Persistent: true}, func(err error) {
			if err != nil {
				select {
				case errs <- err:
				default:
				}
			}
			<-sem
		})
		if len(errs) > 0 {
			b.Fatal(<-errs)
		}
	}
	for i := 0; i < cap(sem); i++ {
		sem <- struct{}{}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
}
