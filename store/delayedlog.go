package store

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"

	"github.com/rs/zerolog"
)

// The held-message log: where delayed-message exchanges keep the messages they hold, outside
// Badger (doc.go, "Held messages"). Every held message is appended to the segment file of its
// due time's slice (delaySliceMs of due time) under data-dir/delayed/<vhost>/<exchange>/,
// and to one journal shared by every slice and exchange. A batch of writes is one write per
// file touched and one fsync, of the journal: confirms are group-committed across slices. A
// checkpoint fsyncs the segment files written since the last one and empties the journal, so
// after a crash the journal replays only what a segment file may lack. A slice is read whole
// (one sequential read) and sorted in memory when its messages become next; once each of its
// messages is delivered, its file is removed: no per-message delete, no garbage collection.

const (
	// delaySliceMs is the due time one segment file covers.
	delaySliceMs = 1000
	// heldDirName is the log's directory in the data directory; journalName its journal.
	heldDirName = "delayed"
	journalName = "journal"
	segSuffix   = ".seg"
	// journalMax and maxDirtySlices trigger a checkpoint: the journal replayed at recovery
	// stays small, and so does the number of open segment files.
	journalMax     = 32 << 20
	maxDirtySlices = 256
	// heldBatchBytes bounds the frames one write batch takes.
	heldBatchBytes = 16 << 20
	// syncParallel bounds the segment files a checkpoint fsyncs at once.
	syncParallel = 8
)

// sliceOf is the first due time of due's slice.
func sliceOf(due int64) int64 {
	s := due - due%delaySliceMs
	if due < 0 && due%delaySliceMs != 0 {
		s -= delaySliceMs
	}
	return s
}

// heldDirFor is a vhost's or an exchange's directory name: the name path-escaped behind a
// prefix (so "." and ".." are plain names), or a hash when that would be too long a file name.
func heldDirFor(name string) string {
	if e := url.PathEscape(name); len(e) <= 200 {
		return "n_" + e
	}
	return fmt.Sprintf("h_%016x", fnv64(name))
}

func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

type heldKey struct{ vhost, exchange string }

// heldExchange is one exchange's slices.
type heldExchange struct {
	key    heldKey
	dir    string
	slices map[int64]*heldSlice // by start; under delayedLog.mu
	count  int64                // held messages not delivered; under delayedLog.mu
}

// heldSlice is one segment file.
type heldSlice struct {
	x     *heldExchange
	start int64
	path  string
	// Under delayedLog.mu: the bytes readers may read (whole batches whose journal write is
	// synced), and the messages not delivered yet.
	committed int64
	count     int64
	delivered []uint64 // seqs delivered since the reaper last took them, for a delivery mark
	// Writer-owned: the open file (nil when closed) and its length.
	f    *os.File
	size int64
}

type heldOpKind uint8

const (
	heldPut  heldOpKind = iota // append frame
	heldMark                   // append delivery marks
	heldReap                   // remove slices whose messages are all delivered
	heldDrop                   // remove an exchange's slices
	heldNop                    // a barrier: done once everything before it is written
)

type heldOp struct {
	kind    heldOpKind
	key     heldKey
	due     int64
	frame   []byte
	slices  []*heldSlice
	marks   map[*heldSlice][]uint64
	done    func(error)
	dropped func(int64, error)
}

// delayedLog is the held-message log of one store.
type delayedLog struct {
	s      *Store
	root   string
	noSync bool
	log    zerolog.Logger

	mu     sync.Mutex
	wake   *sync.Cond
	queue  []heldOp
	closed bool
	xs     map[heldKey]*heldExchange
	reap   map[*heldSlice]struct{} // slices with no message left, for the reaper
	marks  map[*heldSlice]struct{} // slices with delivered seqs, for the reaper

	round      sync.Mutex // reapRound
	reapWake   chan struct{}
	reapStop   chan struct{}
	reaperDone chan struct{}
	writerDone chan struct{}

	// Writer-owned (and recovery's, before the writer starts).
	journal        *os.File
	journalSize    int64
	dirty          map[*heldSlice]struct{} // written since the last checkpoint
	newDirs        map[string]struct{}     // directories with entries created or removed since then
	sinceDiskCheck int64
	diskErr        error // non-nil while the disk is below the reserve
	broken         error // an I/O error left the files in a state only a restart recovers
	spare          []heldOp
	jbuf           []byte
}

func newDelayedLog(s *Store, dir string, noSync bool, log zerolog.Logger) *delayedLog {
	l := &delayedLog{s: s, root: filepath.Join(dir, heldDirName), noSync: noSync, log: log,
		xs: make(map[heldKey]*heldExchange), reap: make(map[*heldSlice]struct{}), marks: make(map[*heldSlice]struct{}),
		reapWake: make(chan struct{}, 1), reapStop: make(chan struct{}),
		reaperDone: make(chan struct{}), writerDone: make(chan struct{}),
		dirty: make(map[*heldSlice]struct{}), newDirs: make(map[string]struct{})}
	l.wake = sync.NewCond(&l.mu)
	return l
}

// start runs the writer and the reaper (after recovery, once the store's writer runs).
func (l *delayedLog) start() {
	go l.run()
	go l.reaper()
}

// close stops the reaper, then lets the writer drain what was submitted, checkpoint and exit.
func (l *delayedLog) close() error {
	close(l.reapStop)
	<-l.reaperDone
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.wake.Broadcast()
	<-l.writerDone
	return l.journal.Close()
}

// submit queues o for the writer; after close its callback gets ErrClosed at once.
func (l *delayedLog) submit(o heldOp) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		o.fail(ErrClosed)
		return
	}
	l.queue = append(l.queue, o)
	first := len(l.queue) == 1
	l.mu.Unlock()
	if first {
		l.wake.Signal()
	}
}

func (o *heldOp) fail(err error) {
	switch {
	case o.done != nil:
		o.done(err)
	case o.dropped != nil:
		o.dropped(0, err)
	}
}

// exchangeLocked returns key's exchange, creating it (mu held).
func (l *delayedLog) exchangeLocked(key heldKey) *heldExchange {
	x := l.xs[key]
	if x == nil {
		x = &heldExchange{key: key, dir: filepath.Join(l.root, heldDirFor(key.vhost), heldDirFor(key.exchange)),
			slices: make(map[int64]*heldSlice)}
		l.xs[key] = x
	}
	return x
}

// sliceLocked returns the slice starting at start of key's exchange, creating it (mu held).
func (l *delayedLog) sliceLocked(key heldKey, start int64) *heldSlice {
	x := l.exchangeLocked(key)
	sl := x.slices[start]
	if sl == nil {
		sl = &heldSlice{x: x, start: start, path: filepath.Join(x.dir, strconv.FormatInt(start, 10)+segSuffix)}
		x.slices[start] = sl
	}
	return sl
}

// run is the writer goroutine: batches of appends, one journal fsync each, and the removals.
func (l *delayedLog) run() {
	defer close(l.writerDone)
	for {
		l.mu.Lock()
		for len(l.queue) == 0 && !l.closed {
			l.wake.Wait()
		}
		if len(l.queue) == 0 {
			l.mu.Unlock()
			break
		}
		batch := l.queue
		l.queue = l.spare[:0]
		l.mu.Unlock()
		for i := 0; i < len(batch); {
			if batch[i].kind != heldPut {
				l.control(&batch[i])
				i++
				continue
			}
			j, size := i, 0
			for j < len(batch) && batch[j].kind == heldPut && (j == i || size+len(batch[j].frame) <= heldBatchBytes) {
				size += len(batch[j].frame)
				j++
			}
			l.writePuts(batch[i:j])
			i = j
		}
		clear(batch)
		l.spare = batch[:0]
	}
	if err := l.checkpoint(); err != nil {
		l.log.Error().Err(err).Msg("store: held-message checkpoint at close failed; the journal is replayed at the next start")
	}
	l.closeFiles()
}

func (l *delayedLog) control(o *heldOp) {
	switch o.kind {
	case heldMark:
		l.writeMarks(o.marks)
	case heldReap:
		l.reapSlices(o.slices)
	case heldDrop:
		n, err := l.dropExchange(o.key)
		o.dropped(n, err)
	case heldNop:
		o.done(nil)
	}
}

// writePuts appends a batch of held messages to their segment files and the journal, syncs
// the journal once, and then makes them readable and confirms them. A failure undoes the
// batch's appends, so no file keeps a record that was refused.
func (l *delayedLog) writePuts(ops []heldOp) {
	var adds int64
	for i := range ops {
		adds += int64(len(ops[i].frame))
	}
	err := l.broken
	if err == nil {
		err = l.checkDisk(adds)
	}
	if err != nil {
		for i := range ops {
			ops[i].done(err)
		}
		return
	}
	type part struct {
		sl   *heldSlice
		buf  []byte
		n    int64
		pre  int64
		open bool
	}
	parts := make(map[*heldSlice]*part)
	var order []*part
	l.jbuf = l.jbuf[:0]
	l.mu.Lock()
	for i := range ops {
		sl := l.sliceLocked(ops[i].key, sliceOf(ops[i].due))
		p := parts[sl]
		if p == nil {
			p = &part{sl: sl}
			parts[sl] = p
			order = append(order, p)
		}
		p.buf = append(p.buf, ops[i].frame...)
		p.n++
		l.jbuf = append(l.jbuf, ops[i].frame...)
	}
	l.mu.Unlock()
	jpre := l.journalSize
	defer func() {
		if cap(l.jbuf) > 1<<20 {
			l.jbuf = nil // a burst's batch: not kept for the next one
		}
	}()
	err = func() error {
		for _, p := range order {
			if err := l.openSlice(p.sl); err != nil {
				return err
			}
			p.open, p.pre = true, p.sl.size
			if _, err := p.sl.f.WriteAt(p.buf, p.sl.size); err != nil {
				return fmt.Errorf("store: append to held-message segment %s: %w", p.sl.path, err)
			}
			p.sl.size += int64(len(p.buf))
		}
		if _, err := l.journal.WriteAt(l.jbuf, l.journalSize); err != nil {
			return fmt.Errorf("store: append to held-message journal: %w", err)
		}
		l.journalSize += int64(len(l.jbuf))
		if !l.noSync {
			if err := l.journal.Sync(); err != nil {
				return fmt.Errorf("store: sync held-message journal: %w", err)
			}
		}
		return nil
	}()
	if err != nil {
		l.undo(jpre, func(yield func(*heldSlice, int64) bool) {
			for _, p := range order {
				if p.open && !yield(p.sl, p.pre) {
					return
				}
			}
		})
		if errors.Is(err, syscall.ENOSPC) {
			err = fmt.Errorf("%w: %w", ErrDiskFull, err)
		}
		l.log.Error().Err(err).Int("messages", len(ops)).Msg("store: held messages not stored")
		for i := range ops {
			ops[i].done(err)
		}
		return
	}
	l.mu.Lock()
	for _, p := range order {
		p.sl.committed = p.sl.size
		p.sl.count += p.n
		p.sl.x.count += p.n
		l.dirty[p.sl] = struct{}{}
	}
	l.mu.Unlock()
	for i := range ops {
		ops[i].done(nil)
	}
	if l.journalSize >= journalMax || len(l.dirty) >= maxDirtySlices {
		if err := l.checkpoint(); err != nil {
			l.breakLog(err)
		}
	}
}

// undo truncates the journal and the segment files a failed batch appended to back to their
// lengths before it, and forgets slices the batch created.
func (l *delayedLog) undo(jpre int64, parts func(yield func(*heldSlice, int64) bool)) {
	var errs []error
	if err := l.journal.Truncate(jpre); err != nil {
		errs = append(errs, err)
	}
	l.journalSize = jpre
	for sl, pre := range parts {
		if err := sl.f.Truncate(pre); err != nil {
			errs = append(errs, err)
		}
		sl.size = pre
		if _, dirty := l.dirty[sl]; !dirty {
			_ = sl.f.Close() // no checkpoint would close it
			sl.f = nil
		}
	}
	l.mu.Lock()
	for _, x := range l.xs {
		for start, sl := range x.slices {
			if sl.committed == 0 && sl.count == 0 && sl.size == 0 {
				delete(x.slices, start)
				if sl.f != nil {
					_ = sl.f.Close()
					sl.f = nil
				}
				_ = os.Remove(sl.path)
			}
		}
	}
	l.mu.Unlock()
	if len(errs) > 0 {
		l.breakLog(fmt.Errorf("store: undo a failed held-message write: %w", errors.Join(errs...)))
	}
}

// breakLog refuses every later held-message write: the files may hold what was never
// confirmed or miss what was, and only the recovery at the next start sorts that out.
func (l *delayedLog) breakLog(err error) {
	if l.broken == nil {
		l.log.Error().Err(err).Msg("store: held-message files failed; refusing held messages until the broker restarts")
		l.broken = err
	}
}

// checkDisk refuses new held messages below the disk reserve, as the store's writer refuses
// message writes (disk.go): asked every diskCheckEvery bytes, and before every batch while low.
func (l *delayedLog) checkDisk(adds int64) error {
	l.sinceDiskCheck += adds
	if l.diskErr == nil && l.sinceDiskCheck < diskCheckEvery && !l.s.Full() {
		return nil
	}
	l.sinceDiskCheck = 0
	reserve := l.s.disk.reserve.Load()
	free, ok := l.s.disk.refresh()
	if !ok || reserve < 0 || free >= uint64(reserve+adds) {
		if l.diskErr != nil {
			l.log.Info().Uint64("free_mib", free>>20).Msg("store: disk space available again; taking held messages")
		}
		l.diskErr = nil
		return nil
	}
	if l.diskErr == nil {
		l.log.Error().Uint64("free_mib", free>>20).Int64("reserve_mib", reserve>>20).
			Msg("store: disk nearly full; refusing held messages until space is freed")
	}
	l.diskErr = fmt.Errorf("%w: %d MiB free on the disk of %s, below the %d MiB reserve",
		ErrDiskFull, free>>20, l.root, reserve>>20)
	return l.diskErr
}

// openSlice opens sl's file for appending, creating it and its directories.
func (l *delayedLog) openSlice(sl *heldSlice) error {
	if sl.f != nil {
		return nil
	}
	if _, err := os.Stat(sl.x.dir); err != nil {
		if err := os.MkdirAll(sl.x.dir, 0o700); err != nil {
			return fmt.Errorf("store: create held-message directory: %w", err)
		}
		l.newDirs[filepath.Dir(sl.x.dir)] = struct{}{}
		l.newDirs[l.root] = struct{}{}
	}
	f, err := os.OpenFile(sl.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("store: open held-message segment: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("store: open held-message segment: %w", err)
	}
	if fi.Size() == 0 {
		l.newDirs[sl.x.dir] = struct{}{}
	}
	sl.f, sl.size = f, fi.Size()
	return nil
}

// checkpoint makes every segment file written since the last checkpoint durable, then
// empties the journal, and closes the files.
func (l *delayedLog) checkpoint() error {
	if len(l.dirty) == 0 && l.journalSize == 0 {
		return nil
	}
	if !l.noSync {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var errs []error
		sem := make(chan struct{}, syncParallel)
		for sl := range l.dirty {
			if sl.f == nil {
				continue
			}
			wg.Add(1)
			sem <- struct{}{}
			go func(f *os.File) {
				defer func() { <-sem; wg.Done() }()
				if err := f.Sync(); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}(sl.f)
		}
		wg.Wait()
		for dir := range l.newDirs {
			if err := syncDirectory(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("store: held-message checkpoint: %w", errors.Join(errs...))
		}
	}
	for sl := range l.dirty {
		if sl.f != nil {
			_ = sl.f.Close()
			sl.f = nil
		}
	}
	clear(l.dirty)
	clear(l.newDirs)
	if err := l.journal.Truncate(0); err != nil {
		return fmt.Errorf("store: empty the held-message journal: %w", err)
	}
	l.journalSize = 0
	if !l.noSync {
		if err := l.journal.Sync(); err != nil {
			return fmt.Errorf("store: sync the held-message journal: %w", err)
		}
	}
	return nil
}

// closeFiles closes every open segment file (the writer is done).
func (l *delayedLog) closeFiles() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, x := range l.xs {
		for _, sl := range x.slices {
			if sl.f != nil {
				_ = sl.f.Close()
				sl.f = nil
			}
		}
	}
}

// dropExchange removes every held message of an exchange and returns how many there were.
func (l *delayedLog) dropExchange(key heldKey) (int64, error) {
	l.mu.Lock()
	x := l.xs[key]
	delete(l.xs, key)
	var n int64
	checkpoint := false
	if x != nil {
		n = x.count
		for _, sl := range x.slices {
			_, d := l.dirty[sl]
			checkpoint = checkpoint || d
		}
	}
	l.mu.Unlock()
	if x == nil {
		return 0, nil
	}
	if checkpoint {
		if err := l.checkpoint(); err != nil {
			l.breakLog(err)
			return n, err
		}
	}
	for _, sl := range x.slices {
		if sl.f != nil {
			_ = sl.f.Close()
			sl.f = nil
		}
		if err := os.Remove(sl.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return n, fmt.Errorf("store: remove held messages of exchange '%s' in vhost '%s': %w", key.exchange, key.vhost, err)
		}
	}
	if err := os.RemoveAll(x.dir); err != nil {
		return n, fmt.Errorf("store: remove held messages of exchange '%s' in vhost '%s': %w", key.exchange, key.vhost, err)
	}
	if !l.noSync {
		if err := syncDirectory(filepath.Dir(x.dir)); err != nil && !errors.Is(err, os.ErrNotExist) {
			l.log.Warn().Err(err).Msg("store: cannot sync a held-message directory")
		}
	}
	return n, nil
}

// syncDirectory fsyncs a directory, so the entries created or removed in it are durable.
func syncDirectory(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
