package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"
)

// The disk guard: what keeps a full disk from killing the process. Badger writes its value
// log, memtable WALs and tables through shared mmaps of files it creates sparse (ftruncate), so
// a write to a page the disk has no block for is SIGBUS, which Go cannot recover from. doc.go
// ("Disk full") explains the three defences: preallocating the log files being written
// (writer.guardLogs), a ballast file released when another process takes the rest of the
// disk, and refusing new messages below the reserve (writer.checkDisk). It also keeps the
// last free-space reading for DiskFree and wakes reclaim while the disk is low.

const (
	// ballastName is the ballast file in the data directory. Badger ignores files it does
	// not know.
	ballastName = "warren.ballast"
	// maxBallast caps the ballast; it is half the reserve below that.
	maxBallast = 64 << 20
	// ballastFloor: the ballast is released when less than this is free, i.e. once whatever
	// filled the disk has hit the wall and stopped.
	ballastFloor = 1 << 20
	// diskPollIdle and diskPollLow: how often the guard reads the free space while the disk
	// is above and below the reserve.
	diskPollIdle = time.Second
	diskPollLow  = 10 * time.Millisecond
	// reclaimEvery: at most one reclaim (memtable flush, LSM flatten, value-log GC) per this
	// while the disk is below the reserve and messages have been removed since the last one.
	reclaimEvery = time.Second
	// openWaitLog: how often Open repeats its log line while it waits for free space.
	openWaitLog = 10 * time.Second
)

// diskGuard is shared by the writer, the guard loop and Open; its fields are atomics or under mu.
type diskGuard struct {
	dir         string
	log         zerolog.Logger
	reserve     atomic.Int64
	free        atomic.Uint64
	freeOK      atomic.Bool
	ballastSize int64
	recheck     atomic.Bool // SetDiskReserve: the writer checks before its next batch

	mu          sync.Mutex // ballast
	ballastHeld bool
}

func (g *diskGuard) init(dir string, reserve int64, log zerolog.Logger) {
	g.dir, g.log = dir, log
	g.reserve.Store(reserve)
	g.ballastSize = ballastSizeFor(reserve)
}

// ballastSizeFor: half the reserve, at most maxBallast; none when the guard is off.
func ballastSizeFor(reserve int64) int64 {
	if reserve <= 0 {
		return 0
	}
	return min(reserve/2, maxBallast)
}

func (g *diskGuard) ballastPath() string { return filepath.Join(g.dir, ballastName) }

// observe records a free-space reading and releases the ballast if the disk is at the floor.
func (g *diskGuard) observe(free uint64, ok bool) {
	g.free.Store(free)
	g.freeOK.Store(ok)
	if ok && free < ballastFloor {
		g.releaseBallast(free)
	}
}

// refresh reads the free space now.
func (g *diskGuard) refresh() (uint64, bool) {
	free, ok := freeBytes(g.dir)
	g.observe(free, ok)
	return free, ok
}

// releaseBallast deletes the ballast file, handing its blocks to Badger's flushes, compactions
// and new log files.
func (g *diskGuard) releaseBallast(free uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.ballastHeld {
		return
	}
	g.ballastHeld = false
	if err := os.Remove(g.ballastPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		g.log.Error().Err(err).Str("path", g.ballastPath()).Msg("store: cannot release the disk ballast")
		return
	}
	g.log.Warn().Uint64("free_bytes", free).Int64("ballast_mib", g.ballastSize>>20).
		Msg("store: disk full; released the ballast so that the store's own writes find space")
}

// heldBallast is the size of the ballast while it is held, else 0.
func (g *diskGuard) heldBallast() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.ballastHeld {
		return 0
	}
	return g.ballastSize
}

// holdBallast (re)creates the ballast once the disk has room for it above the reserve.
func (g *diskGuard) holdBallast(free uint64) {
	if g.ballastSize <= 0 || g.reserve.Load() < 0 || free < uint64(g.reserve.Load()+g.ballastSize) {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ballastHeld {
		return
	}
	path := g.ballastPath()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err == nil {
		err = preallocate(f, g.ballastSize)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		_ = os.Remove(path)
		g.log.Warn().Err(err).Msg("store: cannot create the disk ballast; a disk filled by another process may stop the broker")
		return
	}
	g.ballastHeld = true
	g.log.Debug().Int64("ballast_mib", g.ballastSize>>20).Msg("store: disk ballast in place")
}

// adoptBallast: at Open, a ballast left by the previous run is ours; on a nearly full disk it
// goes at once, so Badger can open.
func (g *diskGuard) adoptBallast() {
	fi, err := os.Stat(g.ballastPath())
	if err != nil {
		return
	}
	g.mu.Lock()
	g.ballastHeld = true
	g.mu.Unlock()
	if free, ok := freeBytes(g.dir); ok && (free < uint64(g.ballastSize) || fi.Size() != g.ballastSize) {
		g.releaseBallast(free)
	}
}

// waitForSpace blocks Open while the disk has less free than Badger needs to open (the
// ballast size: new log files, replayed memtables' flushes), logging every openWaitLog.
// Opening anyway would crash on SIGBUS at every restart; failing would make a supervisor
// restart the broker in a loop. It returns as soon as space is freed.
func (g *diskGuard) waitForSpace() {
	need := uint64(g.ballastSize)
	var logged time.Time
	for {
		free, ok := freeBytes(g.dir)
		if !ok || g.reserve.Load() < 0 || free >= need {
			if !logged.IsZero() {
				g.log.Info().Uint64("free_mib", free>>20).Msg("store: disk space available; opening")
			}
			return
		}
		if time.Since(logged) >= openWaitLog {
			logged = time.Now()
			g.log.Error().Uint64("free_mib", free>>20).Uint64("need_mib", need>>20).Str("dir", g.dir).
				Msg("store: disk full; waiting for free space before opening the data directory")
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// DiskFree is the free space on the data directory's disk at the store's last look (at
// most a second ago while open), as statfs reports it to unprivileged users; ok is false
// where the store cannot tell. The ballast counts as used. Cheap: it reads two atomics.
func (s *Store) DiskFree() (free uint64, ok bool) {
	return s.disk.free.Load(), s.disk.freeOK.Load()
}

// Full reports whether the store refuses new messages for lack of disk space: its last look
// at the disk found less free than the reserve. Publishers ask it before enqueueing a
// persistent message, so one that would be refused is nacked without being enqueued anywhere.
// Cheap: three atomics.
func (s *Store) Full() bool {
	r := s.disk.reserve.Load()
	return r >= 0 && s.disk.freeOK.Load() && s.disk.free.Load() < uint64(r)
}

// SetDiskReserve changes the reserve (Options.DiskReserve) of a running store; it applies from
// the next batch. Negative turns the disk-full check off and releases the ballast; zero sets
// DefaultDiskReserve. The ballast keeps the size it got at Open.
func (s *Store) SetDiskReserve(n int64) {
	if n == 0 {
		n = DefaultDiskReserve
	}
	s.disk.reserve.Store(n)
	s.disk.recheck.Store(true)
	if n < 0 {
		s.disk.releaseBallast(s.disk.free.Load())
	}
}

// diskLoop reads the free space every diskPollIdle (diskPollLow below the reserve), keeps the
// ballast, and asks gcLoop to reclaim space while the disk is below the reserve and messages
// have been removed since the last reclaim.
func (s *Store) diskLoop() {
	defer close(s.diskDone)
	g := &s.disk
	t := time.NewTimer(0)
	defer t.Stop()
	var lastRemoves int64 = -1
	var lastReclaim time.Time
	for {
		select {
		case <-s.gcStop:
			return
		case <-t.C:
		}
		free, ok := g.refresh()
		reserve := g.reserve.Load()
		low := ok && reserve >= 0 && free < uint64(reserve)
		if ok && !low {
			g.holdBallast(free)
		}
		if low && time.Since(lastReclaim) >= reclaimEvery {
			if r := s.w.removes.Load(); r != lastRemoves {
				lastRemoves, lastReclaim = r, time.Now()
				select {
				case s.reclaim <- struct{}{}:
				default:
				}
			}
		}
		if low {
			t.Reset(diskPollLow)
		} else {
			t.Reset(diskPollIdle)
		}
	}
}

// reclaim gives a drained store's disk space back while the disk is low: it flushes the
// memtables (on the writer, so no commit meets Badger's write block), so the deletes reach the
// LSM's levels; flattens the LSM, so compactions count the deleted bodies; and runs value-log
// GC, which then deletes the files whose messages are all gone.
//
// A flush writes each memtable as a level-0 table through a mapping Badger creates at the
// table's full size, and a flatten writes the merged tables the same way: on a disk without
// the blocks for them that write kills the process (SIGBUS). So the flush runs only with room
// for the tables the memtables can hold (writer.flushRoom; the ballast is released for it if
// that makes the room), and the flatten only with room for the LSM as well; otherwise the
// store waits for space and says so once.
func (s *Store) reclaimSpace() {
	start := time.Now()
	free, ok := s.disk.refresh()
	need := s.w.flushRoom()
	if ok && free < need && free+uint64(s.disk.heldBallast()) >= need {
		s.disk.releaseBallast(free)
		free, ok = s.disk.refresh()
	}
	if ok && free < need {
		if !s.reclaimWaits {
			s.reclaimWaits = true
			s.log.Warn().Uint64("free_mib", free>>20).Uint64("needed_mib", need>>20).
				Msg("store: disk full; too little space to flush the memtables and reclaim removed messages; waiting for space")
		}
		return
	}
	s.reclaimWaits = false
	if err := s.syncWrite(op{kind: opFlushMem}); err != nil {
		s.log.Warn().Err(err).Msg("store: flushing memtables to reclaim disk space")
		return
	}
	lsm, _ := s.db.Size()
	if s.staleInLevels() && free >= need+uint64(max(lsm, 0)) {
		if err := s.db.Flatten(1); err != nil {
			s.log.Warn().Err(err).Msg("store: flattening the LSM to reclaim disk space")
		}
	}
	n := s.gcPass()
	free, _ = s.disk.refresh()
	s.log.Info().Int("vlog_files", n).Uint64("free_mib", free>>20).Dur("took", time.Since(start)).
		Msg("store: disk low; reclaimed space of removed messages")
}

// flushMemtables makes Badger write its memtables to level 0. Badger has no call for that
// alone; DropPrefix flushes them first, so the writer drops a marker key it has just set.
// Runs on the writer goroutine: DropPrefix blocks Badger's writes while it runs.
func (w *writer) flushMemtables() error {
	k := flushKey()
	if err := w.db.Update(func(txn *badger.Txn) error { return txn.Set(k, nil) }); err != nil {
		return fmt.Errorf("store: flush marker: %w", err)
	}
	if err := w.db.DropPrefix(k); err != nil {
		return fmt.Errorf("store: flush memtables: %w", err)
	}
	w.memTables.Store(0)
	return nil
}
