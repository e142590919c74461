package store

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// diskCheckEvery: bytes written between two free-space checks while the disk is not low.
const diskCheckEvery = 4 << 20

// vlogPrealloc: how much of a new value-log file the writer preallocates. Badger starts a new
// file after a write that takes the offset past valueLogFileSize, so a write starts below it
// and ends at most one batch (maxBatchBytes, plus entry headers) or one value-log GC batch
// (under 3 MiB) later. A batch larger than that (one message over 16 MiB) gets the whole file.
const vlogPrealloc = valueLogFileSize + maxBatchBytes + 1<<20

// checkDisk sets w.diskErr while the disk holding the store has less than the reserve (plus
// this batch) free, or a log file being written could not be preallocated. It returns the
// batch's size. It asks the file system once per diskCheckEvery bytes, and before every batch
// while the disk is low; each reading goes to the disk guard, which releases the ballast when
// the disk is at the floor.
func (w *writer) checkDisk(batch []op) int64 {
	var size, adds int64
	for i := range batch {
		b := int64(batch[i].bytes())
		size += b
		if batch[i].addsData() {
			adds += b
		}
	}
	w.sinceDiskCheck += adds
	recheck := w.s.disk.recheck.Swap(false)
	if w.diskErr == nil && w.sinceDiskCheck < diskCheckEvery && len(w.logs.retry) == 0 && !recheck {
		return size
	}
	w.sinceDiskCheck = 0
	reserve := w.s.disk.reserve.Load()
	free, ok := w.freeSpace(w.s.dir)
	w.s.disk.observe(free, ok)
	if len(w.logs.retry) > 0 {
		w.retryLogs()
	}
	switch {
	case len(w.logs.retry) > 0:
		if w.diskErr == nil {
			w.s.log.Error().Uint64("free_mib", free>>20).Strs("files", w.logs.retry).
				Msg("store: disk full; cannot preallocate the log files being written; refusing new messages")
		}
		w.diskErr = fmt.Errorf("%w: cannot preallocate %s on the disk of %s (%d MiB free)",
			ErrDiskFull, strings.Join(w.logs.retry, ", "), w.s.dir, free>>20)
		return size
	case !ok || reserve < 0 || free >= uint64(reserve+adds):
		if w.diskErr != nil {
			w.s.log.Info().Uint64("free_mib", free>>20).Msg("store: disk space available again")
		}
		w.diskErr = nil
		return size
	}
	if w.diskErr == nil {
		w.s.log.Error().Uint64("free_mib", free>>20).Int64("reserve_mib", reserve>>20).
			Msg("store: disk nearly full; refusing new messages until space is freed")
	}
	w.diskErr = fmt.Errorf("%w: %d MiB free on the disk of %s, below the %d MiB reserve",
		ErrDiskFull, free>>20, w.s.dir, reserve>>20)
	return size
}

// logGuard is the writer's record of the log files it preallocated.
type logGuard struct {
	vlog, mem         int      // newest value-log and memtable fids preallocated, -1 for none
	nextVlog, nextMem string   // paths of the files after them (built once per file)
	retry             []string // files whose preallocation failed; retried before each batch
}

func (g *logGuard) setNext(dir string) {
	g.nextVlog = filepath.Join(dir, vlogName(g.vlog+1))
	g.nextMem = filepath.Join(dir, memName(g.mem+1))
}

// guardLogs preallocates the log files Badger has created since the last call, so that the
// next commit writes only into blocks the disk already gave: the newest value-log file up to
// vlogPrealloc, each memtable WAL in whole (Badger starts a new memtable before a write that
// finds the current one full, so a write ends within the file's 2 × MemTableSize). Badger
// creates a value-log file at the end of the write that fills the previous one, and a WAL at
// the start of the write that needs it, so the writer calls this after every commit; at Open
// (first) it takes the newest files in the directory.
func (w *writer) guardLogs(first bool) {
	g := &w.logs
	if first {
		g.vlog, g.mem = newestFid(w.s.dir, ".vlog"), newestFid(w.s.dir, ".mem")
		w.preallocLog(vlogName(g.vlog), vlogPrealloc)
		w.preallocLog(memName(g.mem), -1)
		g.setNext(w.s.dir)
		return
	}
	for g.vlog >= 0 && exists(g.nextVlog) {
		g.vlog++
		g.setNext(w.s.dir)
		w.preallocLog(vlogName(g.vlog), vlogPrealloc)
	}
	for g.mem >= 0 && exists(g.nextMem) {
		g.mem++
		g.setNext(w.s.dir)
		w.preallocLog(memName(g.mem), -1)
	}
}

// guardLargeBatch preallocates the whole value-log file being written before a batch larger
// than vlogPrealloc leaves room for.
func (w *writer) guardLargeBatch() {
	if w.logs.vlog >= 0 {
		w.preallocLog(vlogName(w.logs.vlog), -1)
	}
}

// preallocLog allocates the first limit bytes (-1: all) of a log file. When the disk has no
// room, the guard releases the ballast and tries again; if that fails too, the file is retried
// before every batch and new messages are refused meanwhile (checkDisk).
func (w *writer) preallocLog(name string, limit int64) {
	if name == "" {
		return
	}
	err := preallocFile(filepath.Join(w.s.dir, name), limit)
	if err != nil && isNoSpace(err) {
		w.s.disk.releaseBallast(0)
		err = preallocFile(filepath.Join(w.s.dir, name), limit)
	}
	if err == nil {
		return
	}
	w.s.log.Error().Err(err).Str("file", name).Msg("store: cannot preallocate a log file")
	w.logs.retry = append(w.logs.retry, name)
	w.sinceDiskCheck = 1 << 62
}

func (w *writer) retryLogs() {
	retry := w.logs.retry
	w.logs.retry = nil
	for _, name := range retry {
		limit := int64(-1)
		if strings.HasSuffix(name, ".vlog") {
			limit = vlogPrealloc
		}
		if err := preallocFile(filepath.Join(w.s.dir, name), limit); err != nil {
			if !os.IsNotExist(err) { // gone: Badger flushed or collected it
				w.logs.retry = append(w.logs.retry, name)
			}
			continue
		}
		w.s.log.Info().Str("file", name).Msg("store: log file preallocated")
	}
}

// preallocFile allocates blocks for the first limit bytes (-1: all) of path, never past its
// size.
func preallocFile(path string, limit int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("store: preallocate: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("store: preallocate: %w", err)
	}
	n := fi.Size()
	if limit >= 0 {
		n = min(n, limit)
	}
	if err := preallocate(f, n); err != nil {
		return fmt.Errorf("store: preallocate %d MiB of %s: %w", n>>20, path, err)
	}
	return nil
}

func vlogName(fid int) string {
	if fid < 0 {
		return ""
	}
	return fmt.Sprintf("%06d.vlog", fid)
}

func memName(fid int) string {
	if fid < 0 {
		return ""
	}
	return fmt.Sprintf("%05d.mem", fid)
}

// newestFid is the highest fid of dir's files named <fid><suffix>, -1 for none.
func newestFid(dir, suffix string) int {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return -1
	}
	n := -1
	for _, e := range entries {
		if fid, err := strconv.Atoi(strings.TrimSuffix(e.Name(), suffix)); err == nil && strings.HasSuffix(e.Name(), suffix) {
			n = max(n, fid)
		}
	}
	return n
}
