package store

import (
	"errors"
	"fmt"
	"os"
)

// Deliveries in the held-message log (delayedlog.go): counting them, marking them in their
// slices' files, and removing a slice's file once all of its messages are delivered.

// delivered counts one held message as delivered. The reaper records it in its slice's file
// (a delivery mark), or removes the file once every message in it is delivered.
func (l *delayedLog) delivered(key heldKey, c DelayedCursor) {
	l.mu.Lock()
	x := l.xs[key]
	var sl *heldSlice
	if x != nil {
		sl = x.slices[sliceOf(c.Due)]
	}
	if sl == nil || sl.count == 0 {
		l.mu.Unlock()
		return
	}
	sl.count--
	x.count--
	if sl.count == 0 {
		l.reap[sl] = struct{}{}
		delete(l.marks, sl)
		sl.delivered = nil
	} else {
		l.marks[sl] = struct{}{}
		sl.delivered = append(sl.delivered, c.Seq)
	}
	l.mu.Unlock()
	select {
	case l.reapWake <- struct{}{}:
	default:
	}
}

// reaper writes delivery marks and removes the files of slices whose messages are all
// delivered, once the deliveries are committed (a Store.Flush: they went to queues through
// the same store), so a crash never loses a message that was marked or taken from a removed
// file. A round at a time; what is delivered meanwhile waits for the next one. When stopped it
// runs a last round, so a clean shutdown leaves every delivery marked.
func (l *delayedLog) reaper() {
	defer close(l.reaperDone)
	for {
		stop := false
		select {
		case <-l.reapStop:
			stop = true
		case <-l.reapWake:
		}
		l.reapRound()
		if stop {
			return
		}
	}
}

func (l *delayedLog) reapRound() {
	// One round at a time, so settle's round ends after one the reaper has begun.
	l.round.Lock()
	defer l.round.Unlock()
	l.mu.Lock()
	slices := make([]*heldSlice, 0, len(l.reap))
	for sl := range l.reap {
		slices = append(slices, sl)
	}
	clear(l.reap)
	marks := make(map[*heldSlice][]uint64, len(l.marks))
	for sl := range l.marks {
		marks[sl] = sl.delivered
		sl.delivered = nil
	}
	clear(l.marks)
	l.mu.Unlock()
	if len(slices) == 0 && len(marks) == 0 {
		return
	}
	if err := l.s.Flush(); err != nil {
		l.log.Warn().Err(err).Int("slices", len(slices)).Msg("store: delivered held messages not committed; not marked as delivered")
		return
	}
	if len(marks) > 0 {
		l.submit(heldOp{kind: heldMark, marks: marks})
	}
	if len(slices) > 0 {
		l.submit(heldOp{kind: heldReap, slices: slices})
	}
}

// settle writes the delivery marks and removals of what was delivered so far, and returns once
// they are done (tests; Close does the same).
func (l *delayedLog) settle() {
	l.reapRound()
	ch := make(chan struct{})
	l.submit(heldOp{kind: heldNop, done: func(error) { close(ch) }})
	<-ch
}

// writeMarks appends delivery marks to the slices' files. They are not journaled: one lost in
// a machine crash delivers its messages again (as an ack lost in a crash does); the next
// checkpoint makes them durable.
func (l *delayedLog) writeMarks(marks map[*heldSlice][]uint64) {
	if l.broken != nil {
		return
	}
	for sl, seqs := range marks {
		l.mu.Lock()
		live := l.xs[sl.x.key] == sl.x && sl.x.slices[sl.start] == sl
		l.mu.Unlock()
		if !live {
			continue
		}
		err := l.openSlice(sl)
		if err == nil {
			_, err = sl.f.WriteAt(appendSegMark(nil, seqs), sl.size)
		}
		if err != nil {
			// Part of the mark may be in the file, a torn tail that would hide later records:
			// cut it off. The marks are lost; a restart delivers those messages again.
			l.log.Warn().Err(err).Str("path", sl.path).Int("delivered", len(seqs)).
				Msg("store: cannot write a delivery mark; a restart delivers these messages again")
			if sl.f != nil {
				if terr := sl.f.Truncate(sl.size); terr != nil {
					l.breakLog(fmt.Errorf("store: cut off a failed delivery mark in %s: %w", sl.path, terr))
					return
				}
			}
			continue
		}
		sl.size += int64(segFrameHead + 1 + uvarintLen(uint64(len(seqs))) + 8*len(seqs))
		l.mu.Lock()
		sl.committed = sl.size
		l.mu.Unlock()
		l.dirty[sl] = struct{}{}
	}
}

// reapSlices removes the files of slices that still have no message left. A slice written
// since the last checkpoint has records in the journal, which would bring them back after a
// crash: a checkpoint comes first.
func (l *delayedLog) reapSlices(slices []*heldSlice) {
	var gone []*heldSlice
	checkpoint := false
	l.mu.Lock()
	for _, sl := range slices {
		if sl.count == 0 && l.xs[sl.x.key] == sl.x && sl.x.slices[sl.start] == sl {
			delete(sl.x.slices, sl.start)
			gone = append(gone, sl)
			_, d := l.dirty[sl]
			checkpoint = checkpoint || d
		}
	}
	l.mu.Unlock()
	if len(gone) == 0 {
		return
	}
	if checkpoint {
		if err := l.checkpoint(); err != nil {
			l.breakLog(err)
			return
		}
	}
	dirs := make(map[string]struct{})
	for _, sl := range gone {
		if sl.f != nil {
			_ = sl.f.Close()
			sl.f = nil
		}
		if err := os.Remove(sl.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			l.log.Warn().Err(err).Str("path", sl.path).Msg("store: cannot remove a delivered held-message segment")
			continue
		}
		dirs[sl.x.dir] = struct{}{}
	}
	if l.noSync {
		return
	}
	for dir := range dirs {
		// A removal lost in a machine crash delivers the slice's messages again: logged, not fatal.
		if err := syncDirectory(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			l.log.Warn().Err(err).Str("dir", dir).Msg("store: cannot sync a held-message directory")
		}
	}
}
