package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/rs/zerolog"
)

// Options configure Open.
type Options struct {
	Dir    string
	Logger zerolog.Logger
	// NoSync skips fsync after each commit. For tests only: a machine crash loses
	// confirmed messages.
	NoSync bool
	// GCInterval is how often the value log is garbage-collected; default 1 minute.
	GCInterval time.Duration
	// DiskReserve is the free space the store keeps on its disk (RabbitMQ's disk_free_limit):
	// below it, message writes fail with ErrDiskFull (publishers get basic.nack) while deletes
	// and definitions still go through. Default DefaultDiskReserve; negative disables the check.
	DiskReserve int64
	// PageOutInterval is how often the value-log pages this process has mapped are handed
	// back to the kernel, so a backlog on disk does not stay in RSS; default
	// DefaultPageOutInterval, negative disables it. Linux only.
	PageOutInterval time.Duration
}

// Exchange is a durable exchange definition.
type Exchange struct {
	Vhost, Name, Kind             string
	Durable, AutoDelete, Internal bool
	Args                          []byte
}

// Queue is a durable queue definition. ID names the queue's messages; it comes from a Badger
// Sequence and is never reused.
type Queue struct {
	Vhost, Name string
	ID          uint64
	AutoDelete  bool
	Args        []byte
}

// Binding is a durable binding. ArgsHash is whatever the caller passes (binding.ArgsHash);
// it keeps two bindings that differ only in arguments apart.
type Binding struct {
	Vhost, Source string
	DestKind      uint8
	Dest          string
	RoutingKey    string
	Args          []byte
	ArgsHash      [32]byte
}

// Message is what the store keeps of a queued message.
type Message struct {
	Exchange, RoutingKey string
	Properties           []byte // encoded AMQP property flags + list
	Body                 []byte
	Persistent           bool  // false: a transient message paged out under memory pressure
	Expiry               int64 // unix ms, 0 = none
	Priority             uint8
}

// Ref names one message in one queue.
type Ref struct{ QueueID, Seq uint64 }

// Stored is one record read back by ReadQueue. MsgID is the shared body's ID, 0 for a
// message stored inline.
type Stored struct {
	Seq, MsgID    uint64
	Msg           Message
	Deliveries    uint32
	HasDeliveries bool
}

// QueueIndex summarizes a queue's records. Bytes is the sum of the records' StoredSize.
type QueueIndex struct {
	Count, Bytes      int64
	FirstSeq, LastSeq uint64
}

// Store is Warren's durable storage: one Badger DB, one writer goroutine.
type Store struct {
	db       *badger.DB
	log      zerolog.Logger
	dir      string
	disk     diskGuard
	clean    bool
	queueSeq *badger.Sequence
	delaySeq *badger.Sequence // orders held messages due in the same millisecond (delayed.go)
	held     *delayedLog      // where delayed-message exchanges keep their messages (delayedlog.go)
	msgIDs   atomic.Uint64    // last message ID handed out

	// Submission side: any goroutine, under mu. pending only grows here; the writer takes
	// from its front, pending[head:] (see writer.take).
	mu      sync.Mutex
	wake    *sync.Cond
	pending []op
	head    int
	closed  bool
	// pendingBytes is the size of what waits in pending; room is signalled when the writer
	// takes a batch, for WaitBelow.
	pendingBytes atomic.Int64
	room         *sync.Cond

	w           writer        // owned by the writer goroutine
	writerDone  chan struct{} // closed when the writer has drained and exited
	drops       atomic.Int64  // background drops (purge, delete, orphans) not finished
	gcStop      chan struct{}
	gcDone      chan struct{}
	pageOutDone chan struct{}
	eagerPaging atomic.Bool // SetEagerPageOut
	diskDone    chan struct{}
	reclaim     chan struct{} // diskLoop asks gcLoop to reclaim space
	// reclaimWaits: the last reclaim found too little space to flush (logged once); gcLoop's.
	reclaimWaits bool
	absDir       string // Dir made absolute with symlinks resolved, as /proc/self/maps shows it
	closeResult  error
	closeOnce    sync.Once
}

// Tuning that is not an Option. Documented in doc.go.
const (
	maxBatchOps   = 10_000
	maxBatchBytes = 16 << 20
	// dropChunk bounds how many 'M' (and as many 'R') keys one background drop step deletes.
	dropChunk = 4096
	// DefaultDiskReserve: the writer refuses new messages when less than this is free on the
	// disk (Options.DiskReserve).
	DefaultDiskReserve = 128 << 20
	// valueThreshold: values of at least this many bytes go to the value log.
	valueThreshold = 256
	// valueLogFileSize: Badger's value-log file size, and so the largest record.
	valueLogFileSize = 64 << 20
)

// Open opens (creating if needed) the store in o.Dir, checks the schema version, recovers
// the message index (refcounts of shared bodies, deletes transient records) and starts the
// writer and the value-log GC. Records of queues that no longer exist are deleted in the
// background.
func Open(o Options) (*Store, error) {
	return open(o, nil)
}

func open(o Options, tune func(*badger.Options)) (*Store, error) {
	if o.Dir == "" {
		return nil, fmt.Errorf("%w: Options.Dir is empty", ErrInvalid)
	}
	if o.GCInterval <= 0 {
		o.GCInterval = time.Minute
	}
	if o.DiskReserve == 0 {
		o.DiskReserve = DefaultDiskReserve
	}
	bo := badgerOptions(o)
	if tune != nil {
		tune(&bo)
	}
	var guard diskGuard
	guard.init(o.Dir, o.DiskReserve, o.Logger)
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: create data directory: %w", err)
	}
	guard.adoptBallast()
	guard.waitForSpace()
	// Memtable logs left by the previous run are replayed into memtables the writer has not
	// counted (writer.memTables).
	replayed, _ := filepath.Glob(filepath.Join(o.Dir, "*.mem"))
	db, err := badger.Open(bo)
	if err != nil {
		return nil, openError(o.Dir, err)
	}
	s := &Store{
		db:          db,
		log:         o.Logger,
		dir:         o.Dir,
		writerDone:  make(chan struct{}),
		gcStop:      make(chan struct{}),
		gcDone:      make(chan struct{}),
		pageOutDone: make(chan struct{}),
		diskDone:    make(chan struct{}),
		reclaim:     make(chan struct{}, 1),
		absDir:      resolveDir(o.Dir),
	}
	s.disk.init(o.Dir, o.DiskReserve, o.Logger)
	s.disk.ballastHeld = guard.ballastHeld
	s.disk.refresh()
	s.wake = sync.NewCond(&s.mu)
	s.room = sync.NewCond(&s.mu)
	s.w.init(s)
	if len(replayed) == 0 {
		s.w.memTables.Store(0)
	}
	s.w.guardLogs(true)
	fail := func(err error) (*Store, error) {
		_ = db.Close()
		return nil, err
	}
	fresh, err := s.checkSchema()
	if err != nil {
		return fail(err)
	}
	if s.clean, err = s.takeCleanMarker(fresh); err != nil {
		return fail(err)
	}
	rec, err := s.recover()
	if err != nil {
		return fail(err)
	}
	if s.queueSeq, err = db.GetSequence(queueSeqKey(), 16); err != nil {
		return fail(fmt.Errorf("store: queue ID sequence: %w", err))
	}
	if s.delaySeq, err = db.GetSequence(delaySeqKey(), 1<<16); err != nil {
		return fail(fmt.Errorf("store: delayed-message sequence: %w", err))
	}
	s.held = newDelayedLog(s, o.Dir, o.NoSync, o.Logger)
	if err := s.held.recover(); err != nil {
		if s.held.journal != nil {
			_ = s.held.journal.Close()
		}
		return fail(err)
	}
	s.msgIDs.Store(rec.maxSharedID)
	s.log.Info().Bool("clean_shutdown", s.clean).Int("shared_bodies", len(s.w.refs)).
		Int("transient_deleted", rec.transient).Int("orphan_queues", len(rec.orphans)).
		Dur("took", rec.took).Msg("store: opened")
	go s.w.run()
	s.held.start()
	go s.gcLoop(o.GCInterval)
	go s.pageOutLoop(o.PageOutInterval)
	go s.diskLoop()
	for _, q := range rec.orphans {
		s.log.Info().Uint64("queue_id", q).Msg("store: dropping records of a deleted queue")
		s.drop(q, 0, ^uint64(0), nil)
	}
	return s, nil
}

// resolveDir returns dir as the kernel names it in /proc/self/maps.
func resolveDir(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	return dir
}

// Badger's memtables: their size and number (doc.go).
const (
	memTableSize = 16 << 20
	numMemtables = 3
)

// badgerOptions tunes Badger for a broker's journal: small keys and pointers in the LSM, bodies
// in the value log, little memory. doc.go explains each choice.
func badgerOptions(o Options) badger.Options {
	return badger.DefaultOptions(o.Dir).
		WithLogger(badgerLogger{o.Logger.With().Str("component", "badger").Logger()}).
		WithSyncWrites(!o.NoSync).
		WithValueThreshold(valueThreshold).
		WithMemTableSize(memTableSize).
		WithNumMemtables(numMemtables).
		WithNumLevelZeroTables(2).
		WithCompression(options.None).
		WithBlockCacheSize(0).
		WithValueLogFileSize(valueLogFileSize).
		WithNumCompactors(2).
		WithDetectConflicts(false).
		WithMetricsEnabled(false)
}

// openError turns Badger's open failures into errors that say what is wrong. Badger formats
// the errors it wraps with %v, so the lock failure is recognized by its text.
func openError(dir string, err error) error {
	if strings.Contains(err.Error(), "Cannot acquire directory lock") ||
		errors.Is(err, syscall.EWOULDBLOCK) {
		detail := "another process has it open; stop it or choose another data directory"
		if b, rerr := os.ReadFile(filepath.Join(dir, "LOCK")); rerr == nil {
			pid := strings.TrimSpace(string(b))
			if pid == fmt.Sprint(os.Getpid()) {
				detail = "it is already open in this process"
			} else if pid != "" {
				detail = "process " + pid + " has it open; stop it or choose another data directory"
			}
		}
		return fmt.Errorf("%w: %s: %s", ErrLocked, dir, detail)
	}
	if isNoSpace(err) {
		return fmt.Errorf("%w: open %s: %v", ErrDiskFull, dir, err)
	}
	return fmt.Errorf("store: cannot open data directory %s (damaged or unreadable): %w", dir, err)
}

func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || strings.Contains(err.Error(), "no space left on device")
}

// checkSchema writes the schema version into a new directory, and refuses a directory with
// another version or without one.
func (s *Store) checkSchema() (fresh bool, err error) {
	err = s.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(schemaKey())
		if errors.Is(err, badger.ErrKeyNotFound) {
			opts := badger.DefaultIteratorOptions
			opts.PrefetchValues = false
			it := txn.NewIterator(opts)
			it.Rewind()
			empty := !it.Valid()
			it.Close()
			if !empty {
				return fmt.Errorf("%w: %s has data but no schema version record (not a Warren data directory?)",
					ErrSchemaVersion, s.dir)
			}
			fresh = true
			return txn.Set(schemaKey(), encodeSchema(schemaVersion))
		}
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		n, err := decodeSchema(v)
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrSchemaVersion, s.dir, err)
		}
		if n != schemaVersion {
			return fmt.Errorf("%w: %s has schema version %d, this build reads version %d%s",
				ErrSchemaVersion, s.dir, n, schemaVersion, newerHint(n))
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrSchemaVersion) {
		err = fmt.Errorf("store: reading schema version in %s: %w", s.dir, err)
	}
	return fresh, err
}

func newerHint(n uint32) string {
	if n > schemaVersion {
		return " (written by a newer Warren)"
	}
	return ""
}

// takeCleanMarker reports whether the previous run left the clean-shutdown marker, and
// deletes it (durably) so that a crash of this run is seen by the next Open. A new directory
// counts as clean: there is nothing to recover.
func (s *Store) takeCleanMarker(fresh bool) (bool, error) {
	clean := fresh
	err := s.db.Update(func(txn *badger.Txn) error {
		_, err := txn.Get(cleanKey())
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		clean = true
		return txn.Delete(cleanKey())
	})
	if err != nil {
		return false, fmt.Errorf("store: clean-shutdown marker: %w", err)
	}
	return clean, nil
}

// CleanShutdown reports whether the previous run closed the store cleanly (or the directory
// is new). After a crash it is false: confirmed messages are all there, but the broker may
// want to log it, and messages whose acks were not yet committed will be delivered again.
func (s *Store) CleanShutdown() bool { return s.clean }

// Close drains every submitted write (and unfinished background purges), stops the writer
// and the GC, writes the clean-shutdown marker and closes Badger. Calls after the first
// return the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		// Before the writer stops: the held-message reaper commits deliveries through it.
		heldErr := s.held.close()
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.wake.Broadcast()
		s.room.Broadcast()
		<-s.writerDone
		close(s.gcStop)
		<-s.gcDone
		<-s.pageOutDone
		<-s.diskDone
		var errs []error
		if heldErr != nil {
			errs = append(errs, fmt.Errorf("store: close held-message log: %w", heldErr))
		}
		if err := s.queueSeq.Release(); err != nil {
			errs = append(errs, fmt.Errorf("store: release queue ID sequence: %w", err))
		}
		if err := s.delaySeq.Release(); err != nil {
			errs = append(errs, fmt.Errorf("store: release delayed-message sequence: %w", err))
		}
		if err := s.db.Update(func(txn *badger.Txn) error {
			return txn.Set(cleanKey(), encodeClean(time.Now().UnixMilli()))
		}); err != nil {
			errs = append(errs, fmt.Errorf("store: write clean-shutdown marker: %w", err))
		}
		if err := s.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("store: close badger: %w", err))
		}
		s.closeResult = errors.Join(errs...)
	})
	return s.closeResult
}

// gcLoop runs Badger's value-log GC every interval, each time until a pass rewrites nothing.
// Badger picks files by the discard statistics compactions collect.
func (s *Store) gcLoop(interval time.Duration) {
	defer close(s.gcDone)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.gcStop:
			return
		case <-t.C:
			s.runGC()
		case <-s.reclaim:
			s.reclaimSpace()
		}
	}
}

// runGC rewrites value-log files until none is worth it. Badger picks files by discard
// statistics that compactions gather, and a compaction only counts a deleted body once the
// delete meets the record in the same level: after a backlog drains, the deletes sit in
// upper levels below their size targets and may never be compacted down. So when a pass
// frees nothing while the value log is large and the LSM holds stale data, flatten the LSM
// (it holds keys and pointers only, so this is quick) and try again.
func (s *Store) runGC() (rewritten int) {
	rewritten = s.gcPass()
	if !s.worthFlattening() {
		return rewritten
	}
	start := time.Now()
	if err := s.db.Flatten(1); err != nil {
		s.log.Warn().Err(err).Msg("store: flattening the LSM for value-log GC")
		return rewritten
	}
	rewritten += s.gcPass()
	s.log.Debug().Int("files", rewritten).Dur("took", time.Since(start)).Msg("store: flattened the LSM for value-log GC")
	return rewritten
}

func (s *Store) gcPass() (rewritten int) {
	for {
		select {
		case <-s.gcStop:
			return rewritten
		default:
		}
		err := s.db.RunValueLogGC(0.5)
		switch {
		case err == nil:
			rewritten++
		case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected):
			if rewritten > 0 {
				s.log.Debug().Int("files", rewritten).Msg("store: value log GC")
			}
			return rewritten
		default:
			s.log.Warn().Err(err).Msg("store: value log GC")
			return rewritten
		}
	}
}

// worthFlattening: more than two value-log files on disk, and LSM tables with stale data
// (deletes) in more than one level.
func (s *Store) worthFlattening() bool {
	if !s.staleInLevels() {
		return false
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return false
	}
	var vlog int64
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".vlog") {
			if fi, err := e.Info(); err == nil {
				vlog += fi.Size()
			}
		}
	}
	return vlog > 2*valueLogFileSize
}

// staleInLevels: LSM tables with stale data (deletes) in more than one level.
func (s *Store) staleInLevels() bool {
	var stale int64
	levels := 0
	for _, l := range s.db.Levels() {
		stale += l.StaleDatSize
		if l.NumTables > 0 {
			levels++
		}
	}
	return stale > 0 && levels >= 2
}

// badgerLogger passes Badger's warnings and errors to zerolog and drops the rest.
type badgerLogger struct{ l zerolog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) { b.emit(b.l.Error(), f, a) }

func (b badgerLogger) Warningf(f string, a ...any) { b.emit(b.l.Warn(), f, a) }

func (badgerLogger) Infof(string, ...any) {}

func (badgerLogger) Debugf(string, ...any) {}

func (badgerLogger) emit(e *zerolog.Event, f string, a []any) {
	if e.Enabled() {
		e.Msg(strings.TrimRight(fmt.Sprintf(f, a...), "\n"))
	}
}
