package store

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Reading the held-message log: a window's worth of messages in due order, and recovery at
// Open (delayedlog.go).

// readHeld returns up to maxCount committed held messages of key's exchange in due order,
// after the cursor when after is not nil, stopping once past maxBytes of bodies and
// properties. Each slice from the cursor's on is read whole and sorted; only the records
// returned are decoded (into memory of their own: nothing aliases the file's bytes).
func (l *delayedLog) readHeld(key heldKey, after *DelayedCursor, maxCount, maxBytes int) ([]Delayed, error) {
	type snap struct {
		sl *heldSlice
		n  int64
	}
	from := int64(math.MinInt64)
	if after != nil {
		from = sliceOf(after.Due)
	}
	l.mu.Lock()
	x := l.xs[key]
	var snaps []snap
	if x != nil {
		for start, sl := range x.slices {
			if start >= from && sl.committed > 0 {
				snaps = append(snaps, snap{sl, sl.committed})
			}
		}
	}
	l.mu.Unlock()
	slices.SortFunc(snaps, func(a, b snap) int { return compareInt(a.sl.start, b.sl.start) })
	type rec struct {
		c       DelayedCursor
		payload []byte
	}
	var out []Delayed
	bytes := 0
	var recs []rec
	gone := make(map[uint64]struct{})
	for _, sn := range snaps {
		if len(out) >= maxCount || len(out) > 0 && bytes >= maxBytes {
			break
		}
		data, err := readPrefix(sn.sl.path, sn.n)
		if errors.Is(err, os.ErrNotExist) {
			continue // removed meanwhile: every message in it was delivered
		}
		if err != nil {
			return nil, fmt.Errorf("store: read held messages of exchange '%s' in vhost '%s': %w", key.exchange, key.vhost, err)
		}
		l.mu.Lock()
		same := l.xs[key] == x && x.slices[sn.sl.start] == sn.sl
		l.mu.Unlock()
		if !same {
			continue
		}
		recs = recs[:0]
		clear(gone)
		valid, err := scanSegment(data, func(_, p []byte) error {
			if isSegMark(p) {
				return parseSegMark(p, func(q uint64) { gone[q] = struct{}{} })
			}
			h, _, err := parseSegHeader(p)
			if err != nil {
				return err
			}
			c := DelayedCursor{Due: h.due, Seq: h.seq}
			if after == nil || after.Less(c) {
				recs = append(recs, rec{c, p})
			}
			return nil
		})
		if err != nil || valid < len(data) {
			l.log.Error().Err(err).Str("path", sn.sl.path).Int("valid_bytes", valid).Int("committed_bytes", len(data)).
				Msg("store: held-message segment corrupt; the messages after the damage are lost")
		}
		slices.SortFunc(recs, func(a, b rec) int {
			if a.c.Less(b.c) {
				return -1
			}
			if b.c.Less(a.c) {
				return 1
			}
			return 0
		})
		for _, r := range recs {
			if _, ok := gone[r.c.Seq]; ok {
				continue
			}
			if len(out) >= maxCount || len(out) > 0 && bytes >= maxBytes {
				break
			}
			var d Delayed
			if _, err := decodeSegRecord(append([]byte(nil), r.payload...), &d); err != nil {
				return nil, fmt.Errorf("store: read held messages of exchange '%s' in vhost '%s': %w", key.exchange, key.vhost, err)
			}
			out = append(out, d)
			bytes += len(d.Msg.Body) + len(d.Msg.Properties)
		}
	}
	return out, nil
}

func compareInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// readPrefix reads the first n bytes of a file (fewer if it is shorter).
func readPrefix(path string, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	b := make([]byte, n)
	k, err := f.ReadAt(b, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b[:k], nil
}

// recover rebuilds the index from the segment files and replays the journal, at Open before
// the writer starts. A segment file's torn tail is cut off; transient records (a restart
// loses them, as it loses transient queued messages) are dropped, rewriting the file; then
// each persistent journal record no segment file has is appended to its file, and a
// checkpoint makes it all durable and empties the journal.
func (l *delayedLog) recover() error {
	began := time.Now()
	if err := os.MkdirAll(l.root, 0o700); err != nil {
		return fmt.Errorf("store: create held-message directory: %w", err)
	}
	jpath := filepath.Join(l.root, journalName)
	jdata, err := os.ReadFile(jpath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("store: read held-message journal: %w", err)
	}
	missing := make(map[uint64]struct{})
	jvalid, _ := scanSegment(jdata, func(_, p []byte) error {
		if h, _, err := parseSegHeader(p); err == nil && h.persistent {
			missing[h.seq] = struct{}{}
		}
		return nil
	})
	if l.journal, err = os.OpenFile(jpath, os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return fmt.Errorf("store: open held-message journal: %w", err)
	}
	l.journalSize = int64(len(jdata))
	l.newDirs[l.root] = struct{}{}
	vhosts, err := os.ReadDir(l.root)
	if err != nil {
		return fmt.Errorf("store: list held messages: %w", err)
	}
	segments, dropped := 0, 0
	for _, v := range vhosts {
		if !v.IsDir() {
			continue
		}
		xs, err := os.ReadDir(filepath.Join(l.root, v.Name()))
		if err != nil {
			return fmt.Errorf("store: list held messages: %w", err)
		}
		for _, xd := range xs {
			dir := filepath.Join(l.root, v.Name(), xd.Name())
			files, err := os.ReadDir(dir)
			if err != nil {
				continue // not a directory
			}
			for _, f := range files {
				start, err := strconv.ParseInt(strings.TrimSuffix(f.Name(), segSuffix), 10, 64)
				if err != nil || !strings.HasSuffix(f.Name(), segSuffix) {
					continue
				}
				n, err := l.recoverSegment(filepath.Join(dir, f.Name()), start, missing)
				if err != nil {
					return err
				}
				segments++
				dropped += n
			}
		}
	}
	replayed := 0
	if len(missing) > 0 {
		_, err = scanSegment(jdata[:jvalid], func(frame, p []byte) error {
			h, _, err := parseSegHeader(p)
			if err != nil {
				return nil
			}
			if _, ok := missing[h.seq]; !ok {
				return nil
			}
			delete(missing, h.seq)
			replayed++
			return l.appendRecovered(heldKey{string(h.vhost), string(h.exchange)}, h.due, frame)
		})
		if err != nil {
			return err
		}
	}
	if err := l.checkpoint(); err != nil {
		return fmt.Errorf("store: recover held messages: %w", err)
	}
	if !l.noSync {
		// The journal's own entry, before the first confirm relies on it.
		for _, d := range []string{filepath.Dir(l.root), l.root} {
			if err := syncDirectory(d); err != nil {
				return fmt.Errorf("store: recover held messages: %w", err)
			}
		}
	}
	var held int64
	for _, x := range l.xs {
		held += x.count
	}
	l.log.Info().Int("segments", segments).Int64("held", held).Int("journal_replayed", replayed).
		Int("transient_dropped", dropped).Dur("took", time.Since(began)).Msg("store: held messages recovered")
	return nil
}

// recoverSegment indexes one segment file, cutting off a torn tail and dropping transient
// records and those marked delivered (rewriting the file); seqs it holds are no longer missing. It returns how many transient ones it dropped.
func (l *delayedLog) recoverSegment(path string, start int64, missing map[uint64]struct{}) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("store: read held-message segment: %w", err)
	}
	type rec struct {
		seq   uint64
		frame []byte
	}
	var key heldKey
	var recs []rec
	gone := make(map[uint64]struct{})
	transient, marks := 0, 0
	valid, perr := scanSegment(data, func(frame, p []byte) error {
		if isSegMark(p) {
			marks++
			return parseSegMark(p, func(q uint64) { gone[q] = struct{}{} })
		}
		h, _, err := parseSegHeader(p)
		if err != nil {
			return err
		}
		if !h.persistent {
			transient++
			return nil
		}
		if len(recs) == 0 {
			key = heldKey{string(h.vhost), string(h.exchange)}
		}
		delete(missing, h.seq)
		recs = append(recs, rec{h.seq, frame})
		return nil
	})
	if valid < len(data) {
		l.log.Warn().Err(perr).Str("path", path).Int("valid_bytes", valid).Int("bytes", len(data)).
			Msg("store: held-message segment has a torn tail; cut off (the journal restores what was confirmed)")
	}
	// What stays: the persistent records not marked delivered.
	var keep []byte
	var count int64
	for _, r := range recs {
		if _, ok := gone[r.seq]; !ok {
			keep = append(keep, r.frame...)
			count++
		}
	}
	switch {
	case count == 0:
		if err := os.Remove(path); err != nil {
			return 0, fmt.Errorf("store: remove empty held-message segment: %w", err)
		}
		l.newDirs[filepath.Dir(path)] = struct{}{}
		return transient, nil
	case transient > 0 || marks > 0 || valid < len(data):
		if err := rewriteFile(path, keep, !l.noSync); err != nil {
			return 0, err
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	sl := l.sliceLocked(key, start)
	if sl.count > 0 {
		l.log.Warn().Str("path", path).Str("other", sl.path).Msg("store: two held-message segments for one slice; keeping the first")
		return transient, nil
	}
	sl.path = path
	sl.committed, sl.size, sl.count = int64(len(keep)), int64(len(keep)), count
	sl.x.count += count
	return transient, nil
}

// appendRecovered appends a journal record a segment file lacks (recovery only).
func (l *delayedLog) appendRecovered(key heldKey, due int64, frame []byte) error {
	l.mu.Lock()
	sl := l.sliceLocked(key, sliceOf(due))
	l.mu.Unlock()
	if err := l.openSlice(sl); err != nil {
		return err
	}
	if _, err := sl.f.WriteAt(frame, sl.size); err != nil {
		return fmt.Errorf("store: replay held-message journal: %w", err)
	}
	sl.size += int64(len(frame))
	l.mu.Lock()
	sl.committed = sl.size
	sl.count++
	sl.x.count++
	l.mu.Unlock()
	l.dirty[sl] = struct{}{}
	return nil
}

// rewriteFile replaces path with data: a temporary file, synced, renamed over it.
func rewriteFile(path string, data []byte, sync bool) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("store: rewrite held-message segment: %w", err)
	}
	_, err = f.Write(data)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("store: rewrite held-message segment: %w", err)
	}
	return nil
}
