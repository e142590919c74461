package server

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/server/queue"
)

// The resource monitor samples the process's memory and the data dir's free disk space and
// raises or clears the alarms (alarm.go). Memory also drives paging: from half the limit
// (RabbitMQ's vm_memory_high_watermark_paging_ratio) every queue keeps a small window in
// memory and pages the rest of its ready messages out, so memory can fall back and the alarm,
// if it was raised, clears while the messages wait on disk.

const (
	// memorySample is how often the process's memory is read (a /proc read, a few µs);
	// memorySampleHigh while it is over the paging threshold, where it can pass the limit fast.
	memorySample     = 100 * time.Millisecond
	memorySampleHigh = 20 * time.Millisecond
	// diskSample is how often the data dir's free space is read.
	diskSample = time.Second
	// pagingRatio: from this fraction of the memory limit queues shrink their windows.
	pagingRatio = 0.5
	// alarmClearRatio: the memory alarm clears below this fraction of the limit (hysteresis,
	// so publishers are not blocked and unblocked at every sample near the limit).
	alarmClearRatio = 0.95
)

// pressureWindow is the window each queue keeps while memory is over the paging threshold.
var pressureWindow = queue.Window{Count: 256, Bytes: 1 << 20}

// diskSpace is what the monitor needs of the store.
type diskSpace interface {
	DiskFree() (free uint64, ok bool)
}

// pager is the store's page-out of its mapped files (store.Store.SetEagerPageOut): eager while
// memory is over the paging threshold, so the files the queues page out to do not stay
// resident in their place.
type pager interface {
	SetEagerPageOut(on bool)
}

// resources samples memory and disk and drives the alarms and queue paging.
type resources struct {
	srv    *Server
	log    zerolog.Logger
	disk   diskSpace // nil without a store
	pager  pager     // nil without a store
	memory func() (uint64, bool)

	memoryLimit   atomic.Int64 // bytes; 0: no memory alarm
	diskFreeLimit atomic.Int64 // bytes; negative: no disk alarm
	used          atomic.Int64 // memory at the last sample
	// bodies counts the bytes of message bodies received, ever; bodiesAtSample is its value at
	// the last memory sample. A flood of bodies raises the alarm between samples (addBody).
	bodies         atomic.Int64
	bodiesAtSample atomic.Int64
	kick           chan struct{}

	// Owned by the monitor goroutine.
	paging  bool
	waiting []*queue.Queue // queues whose Trim still waits for records to become durable

	startOnce, stopOnce sync.Once
	stop, done          chan struct{}
}

func newResources(s *Server) *resources {
	r := &resources{srv: s, log: s.log, memory: processMemory,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if s.cfg.Store != nil {
		r.disk = s.cfg.Store
		r.pager = s.cfg.Store
	}
	r.memoryLimit.Store(s.cfg.MemoryLimit)
	r.diskFreeLimit.Store(s.cfg.DiskFreeLimit)
	return r
}

// start takes the first readings before it returns, so a broker started over a limit refuses
// publishes from its first connection on, then samples in the background.
func (r *resources) start() {
	r.startOnce.Do(func() {
		r.sampleMemory()
		r.sampleDisk()
		go r.run()
	})
}

func (r *resources) close() {
	r.stopOnce.Do(func() { close(r.stop) })
	r.startOnce.Do(func() { close(r.done) }) // never started
	<-r.done
}

func (r *resources) run() {
	defer close(r.done)
	t := time.NewTimer(memorySample)
	defer t.Stop()
	lastDisk := time.Now() // start took the first readings
	for {
		if r.paging {
			t.Reset(memorySampleHigh)
		} else {
			t.Reset(memorySample)
		}
		select {
		case <-r.stop:
			return
		case <-t.C:
		case <-r.kick:
			lastDisk = time.Time{} // a limit changed: look at both now
		}
		r.sampleMemory()
		if now := time.Now(); now.Sub(lastDisk) >= diskSample {
			lastDisk = now
			r.sampleDisk()
		}
	}
}

// addBody counts n bytes of message body received. It runs for every body frame, so it
// costs an atomic add and, only with a memory limit, two loads: memory cannot have grown by
// more than what arrived since the last sample, so the alarm is raised at once when the last
// sample plus that passes the limit (the next sample clears it again if the bytes were freed
// or paged out meanwhile). A flood of bodies is stopped between two samples this way.
func (r *resources) addBody(n int64) {
	total := r.bodies.Add(n)
	limit := r.memoryLimit.Load()
	if limit <= 0 || r.srv.alarms.active.Load()&uint32(alarmMemory) != 0 {
		return
	}
	if r.used.Load()+total-r.bodiesAtSample.Load() > limit {
		if r.srv.alarms.set(alarmMemory, true) {
			r.log.Warn().Int64("limit", limit).Int64("received_since_sample", total-r.bodiesAtSample.Load()).
				Msg("memory alarm: message bodies received since the last reading pass the memory limit; publishers are blocked")
		}
	}
}

func (r *resources) sampleMemory() {
	used, ok := r.memory()
	if !ok {
		return
	}
	r.used.Store(int64(used))
	r.bodiesAtSample.Store(r.bodies.Load())
	limit := r.memoryLimit.Load()
	if limit <= 0 {
		r.setPaging(false)
		r.srv.alarms.set(alarmMemory, false)
		return
	}
	alarmed := r.srv.alarms.active.Load()&uint32(alarmMemory) != 0
	switch {
	case !alarmed && int64(used) > limit:
		if r.srv.alarms.set(alarmMemory, true) {
			r.log.Warn().Uint64("used", used).Int64("limit", limit).
				Msg("memory alarm: memory use is over the limit; publishers are blocked")
		}
	case alarmed && float64(used) < alarmClearRatio*float64(limit):
		if r.srv.alarms.set(alarmMemory, false) {
			r.log.Info().Uint64("used", used).Int64("limit", limit).Msg("memory alarm cleared")
		}
	}
	threshold := pagingRatio * float64(limit)
	switch {
	case float64(used) > threshold:
		r.setPaging(true)
	case float64(used) < 0.8*threshold:
		r.setPaging(false)
	}
	if r.paging && len(r.waiting) > 0 {
		waiting := r.waiting[:0]
		for _, q := range r.waiting {
			if q.Trim() {
				waiting = append(waiting, q)
			}
		}
		clear(r.waiting[len(waiting):])
		r.waiting = waiting
	}
}

// setPaging gives every queue the small window (on) or the configured one back (off).
func (r *resources) setPaging(on bool) {
	if r.paging == on {
		return
	}
	r.paging = on
	w := r.srv.cfg.QueueMemory.window()
	if on {
		w = queue.Window{Count: min(w.Count, pressureWindow.Count), Bytes: min(w.Bytes, pressureWindow.Bytes)}
		r.log.Info().Int64("used", r.used.Load()).Msg("memory over half the limit: queues page their messages out to disk")
	} else {
		r.log.Info().Int64("used", r.used.Load()).Msg("memory below the paging threshold: queues keep their full windows again")
	}
	r.waiting = r.srv.setQueueWindow(w, r.waiting[:0])
	if r.pager != nil {
		r.pager.SetEagerPageOut(on)
	}
}

func (r *resources) sampleDisk() {
	if r.disk == nil {
		return
	}
	free, ok := r.disk.DiskFree()
	if !ok {
		return
	}
	limit := r.diskFreeLimit.Load()
	on := limit >= 0 && free < uint64(limit)
	if r.srv.alarms.set(alarmDisk, on) {
		if on {
			r.log.Warn().Uint64("free", free).Int64("limit", limit).
				Msg("disk alarm: free disk space is below the limit; publishers are blocked")
		} else {
			r.log.Info().Uint64("free", free).Int64("limit", limit).Msg("disk alarm cleared")
		}
	}
}

// setLimits changes the limits at runtime (a reload) and samples at once.
// storeBacklog is how many bytes of writes may wait for the store before publishers are held
// back: 64 MiB, or an eighth of the memory limit when that is less (the writes are copies of
// bodies the queues also hold).
const storeBacklog = 64 << 20

func (r *resources) storeBacklogLimit() int64 {
	if l := r.memoryLimit.Load(); l > 0 {
		return min(storeBacklog, max(l/8, 1<<20))
	}
	return storeBacklog
}

func (r *resources) setLimits(memory, diskFree int64) {
	r.memoryLimit.Store(memory)
	r.diskFreeLimit.Store(diskFree)
	select {
	case r.kick <- struct{}{}:
	default:
	}
}
