package store

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// BenchmarkAppendConfirm: submitters each publish 1 KiB persistent messages and wait for
// each done (a publisher waiting for its confirm), with syncing on. Group commit shows as
// ops/sync growing with the number of submitters.
func BenchmarkAppendConfirm(b *testing.B) {
	for _, submitters := range []int{1, 4, 16} {
		for _, inflight := range []int{1, 64} {
			if inflight > 1 && submitters != 16 {
				continue
			}
			b.Run(fmt.Sprintf("submitters=%d/inflight=%d", submitters, inflight), func(b *testing.B) {
				benchAppend(b, submitters, inflight)
			})
		}
	}
}

func benchAppend(b *testing.B, submitters, inflight int) {
	s, err := Open(Options{Dir: b.TempDir(), Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	m := msg(1, 1024)
	b.ReportAllocs()
	b.SetBytes(1024)
	commits0, batches0, nanos0 := s.w.commits.Load(), s.w.batches.Load(), s.w.commitNanos.Load()
	start := time.Now()
	b.ResetTimer()
	var wg sync.WaitGroup
	per := (b.N + submitters - 1) / submitters
	for g := range submitters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots := make(chan struct{}, inflight)
			var mine sync.WaitGroup
			for i := range per {
				slots <- struct{}{}
				mine.Add(1)
				s.Append(Ref{uint64(g + 1), uint64(i + 1)}, 0, m, func(err error) {
					if err != nil {
						b.Error(err)
					}
					<-slots
					mine.Done()
				})
			}
			mine.Wait()
		}()
	}
	wg.Wait()
	b.StopTimer()
	ops := float64(per * submitters)
	b.ReportMetric(ops/time.Since(start).Seconds(), "msgs/s")
	if c := s.w.commits.Load() - commits0; c > 0 {
		b.ReportMetric(ops/float64(c), "ops/sync")
		b.ReportMetric(float64(s.w.commitNanos.Load()-nanos0)/float64(c)/1e6, "ms/commit")
	}
	_ = batches0
}

// BenchmarkReadQueue reads pages of 256 1 KiB records from a queue of 100k, walking the
// cursor forward.
func BenchmarkReadQueue(b *testing.B) {
	s, err := Open(Options{Dir: b.TempDir(), NoSync: true, Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const n = 100_000
	m := msg(1, 1024)
	for i := 1; i <= n; i++ {
		s.Append(Ref{1, uint64(i)}, 0, m, nil)
	}
	if err := s.Flush(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var after uint64
	records := 0
	for b.Loop() {
		page, err := s.ReadQueue(1, after, 256, 1<<30)
		if err != nil {
			b.Fatal(err)
		}
		records += len(page)
		after = page[len(page)-1].Seq
		if after >= n {
			after = 0
		}
	}
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkRecovery writes STORE_BENCH_RECORDS (default 1M) 1 KiB records into one queue,
// closes, and measures Open plus IndexQueue; then removes them all and reports how much disk
// value-log GC gives back. It also reports the process's peak and current RSS.
//
//	go test -run '^$' -bench Recovery -benchtime 3x ./store
func BenchmarkRecovery(b *testing.B) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("STORE_BENCH_RECORDS")); err == nil && v > 0 {
		n = v
	}
	dir := b.TempDir()
	s, err := Open(Options{Dir: dir, NoSync: true, Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	q := &Queue{Vhost: "/", Name: "backlog"}
	if err := s.PutQueue(q); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	m := msg(1, 1024)
	for i := 1; i <= n; i++ {
		s.Append(Ref{q.ID, uint64(i)}, 0, m, nil)
		if i%10_000 == 0 {
			if err := s.Flush(); err != nil { // a broker's unconfirmed window, not the whole backlog
				b.Fatal(err)
			}
		}
	}
	if err := s.Flush(); err != nil {
		b.Fatal(err)
	}
	b.Logf("wrote %d × 1 KiB in %v; disk %s; rss %s", n, time.Since(start).Round(time.Millisecond), du(dir), rss())
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}

	b.Run(fmt.Sprintf("open+index/records=%d", n), func(b *testing.B) {
		for b.Loop() {
			t0 := time.Now()
			s, err := Open(Options{Dir: dir, NoSync: true, Logger: zerolog.Nop()})
			if err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			ix, err := s.IndexQueue(q.ID)
			if err != nil {
				b.Fatal(err)
			}
			t2 := time.Now()
			if ix.Count != int64(n) {
				b.Fatalf("indexed %d records", ix.Count)
			}
			b.ReportMetric(float64(t1.Sub(t0).Milliseconds()), "open-ms")
			b.ReportMetric(float64(t2.Sub(t1).Milliseconds()), "index-ms")
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
		}
	})

	// Drain: read every page and remove what was read, then GC.
	s, err = Open(Options{Dir: dir, NoSync: true, Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	start = time.Now()
	var after uint64
	for {
		page, err := s.ReadQueue(q.ID, after, 256, 1<<20)
		if err != nil {
			b.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, st := range page {
			s.Remove(Ref{q.ID, st.Seq}, 0, nil)
		}
		after = page[len(page)-1].Seq
	}
	if err := s.Flush(); err != nil {
		b.Fatal(err)
	}
	b.Logf("drained in %v; disk %s; rss %s", time.Since(start).Round(time.Millisecond), du(dir), rss())
	start = time.Now()
	files := s.runGC()
	b.Logf("value-log GC rewrote %d files in %v; disk %s", files, time.Since(start).Round(time.Millisecond), du(dir))
}

// du sums the sizes of the files in dir (allocated blocks, as du does).
func du(dir string) string {
	var total int64
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if fi, err := os.Stat(filepath.Join(dir, e.Name())); err == nil {
			total += allocated(fi)
		}
	}
	return fmt.Sprintf("%d MiB", total>>20)
}

// rss reads VmHWM (peak), VmRSS, RssAnon and RssFile of this process (Linux).
func rss() string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return "?"
	}
	defer f.Close()
	var parts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && (k == "VmHWM" || k == "VmRSS" || k == "RssAnon" || k == "RssFile") {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			parts = append(parts, fmt.Sprintf("%s=%dMiB", k, kb>>10))
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	parts = append(parts, fmt.Sprintf("GoHeap=%dMiB", ms.HeapInuse>>20))
	return strings.Join(parts, " ")
}
