package quorum

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/store"
)

// fsm is a quorum queue's replicated state on one member: its committed messages in the
// node's store (the classic journal's keys, under the queue's ID), and in memory the size of
// each, so every member counts the committed queue the same way.
type fsm struct {
	st  *store.Store
	id  uint64
	log zerolog.Logger

	mu     sync.Mutex        // the FSM goroutine writes; Committed reads
	live   map[uint64]uint32 // seq -> body size of each committed message
	bytes  int64
	maxSeq uint64 // the highest seq ever appended
}

func newFSM(st *store.Store, id uint64, log zerolog.Logger) *fsm {
	return &fsm{st: st, id: id, log: log, live: map[uint64]uint32{}}
}

// applied is Apply's result: stored gets the outcome of the batch's store writes once they
// are committed to the local store, which is when a leader may confirm.
type applied struct {
	stored chan error
}

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	res := &applied{stored: make(chan error, 1)}
	cmds, err := decodeBatch(l.Data)
	if err != nil {
		// Every member decodes the same bytes the same way, so every member skips it.
		f.log.Error().Err(err).Uint64("index", l.Index).Msg("quorum queue: skipping an undecodable log entry")
		res.stored <- fmt.Errorf("log entry %d: %w", l.Index, err)
		return res
	}
	f.apply(cmds, func(err error) { res.stored <- err })
	return res
}

// apply submits cmds' store writes in order; done gets the outcome once the last is
// committed (the store's callbacks run in submission order).
func (f *fsm) apply(cmds []command, done func(error)) {
	var writes []func(func(error))
	ref := func(seq uint64) store.Ref { return store.Ref{QueueID: f.id, Seq: seq} }
	f.mu.Lock()
	for i := range cmds {
		c := &cmds[i]
		switch c.op {
		case opAppend:
			if old, ok := f.live[c.seq]; ok {
				f.bytes -= int64(old)
			}
			f.live[c.seq] = uint32(len(c.msg.Body))
			f.bytes += int64(len(c.msg.Body))
			f.maxSeq = max(f.maxSeq, c.seq)
			writes = append(writes, func(d func(error)) { f.st.Append(ref(c.seq), 0, &c.msg, d) })
		case opRemove:
			f.forget(c.seq)
			writes = append(writes, func(d func(error)) { f.st.Remove(ref(c.seq), 0, d) })
		case opDeliver:
			if _, ok := f.live[c.seq]; ok {
				writes = append(writes, func(d func(error)) { f.st.SetDeliveries(ref(c.seq), uint32(c.n), d) })
			}
		case opDrop:
			for _, seq := range f.liveIn(c.seq, c.n) {
				f.forget(seq)
				writes = append(writes, func(d func(error)) { f.st.Remove(ref(seq), 0, d) })
			}
		}
	}
	f.mu.Unlock()
	if len(writes) == 0 {
		done(nil)
		return
	}
	var first error
	for i, w := range writes {
		if i == len(writes)-1 {
			w(func(err error) {
				if first == nil {
					first = err
				}
				if first != nil {
					f.log.Error().Err(first).Msg("quorum queue: writing committed commands to the store failed")
				}
				done(first)
			})
			break
		}
		// Callbacks run in order on the store's writer goroutine: first is read after.
		w(func(err error) {
			if err != nil && first == nil {
				first = err
			}
		})
	}
}

func (f *fsm) forget(seq uint64) {
	if old, ok := f.live[seq]; ok {
		f.bytes -= int64(old)
		delete(f.live, seq)
	}
}

// liveIn returns the committed seqs with after < seq <= through.
func (f *fsm) liveIn(after, through uint64) []uint64 {
	var out []uint64
	if through <= after {
		return nil
	}
	if through-after <= uint64(len(f.live)) {
		for s := after + 1; s <= through && s > after; s++ {
			if _, ok := f.live[s]; ok {
				out = append(out, s)
			}
		}
		return out
	}
	for s := range f.live {
		if s > after && s <= through {
			out = append(out, s)
		}
	}
	return out
}

// committed returns the number of committed messages and the bytes of their bodies.
func (f *fsm) committed() (int, int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.live), f.bytes
}

// Snapshot implements raft.FSM: a view of the queue's records as this index left them.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	v, err := f.st.ViewQueue(f.id)
	if err != nil {
		return nil, fmt.Errorf("quorum queue %d: snapshot: %w", f.id, err)
	}
	f.mu.Lock()
	maxSeq := f.maxSeq
	f.mu.Unlock()
	return &snapshot{v: v, maxSeq: maxSeq}, nil
}

// Snapshot stream: maxSeq u64, then frames of len u32 | a command batch (appends, each
// followed by its delivery count if it has one), then a frame of length 0.
const snapFrame = 1 << 20

type snapshot struct {
	v      *store.QueueView
	maxSeq uint64
}

// Persist implements raft.FSMSnapshot.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	err := s.write(sink)
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("quorum queue snapshot: %w", err)
	}
	return sink.Close()
}

func (s *snapshot) write(w io.Writer) error {
	bw := bufio.NewWriter(w)
	if _, err := bw.Write(binary.BigEndian.AppendUint64(nil, s.maxSeq)); err != nil {
		return err
	}
	batch := []byte{cmdVersion}
	flush := func() error {
		if len(batch) == 1 {
			return nil
		}
		if _, err := bw.Write(binary.BigEndian.AppendUint32(nil, uint32(len(batch)))); err != nil {
			return err
		}
		_, err := bw.Write(batch)
		batch = batch[:1]
		return err
	}
	err := s.v.Each(func(st *store.Stored) error {
		batch = encodeAppend(batch, st.Seq, &st.Msg)
		if st.HasDeliveries {
			batch = encodeDeliver(batch, st.Seq, st.Deliveries)
		}
		if len(batch) >= snapFrame {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err == nil {
		_, err = bw.Write([]byte{0, 0, 0, 0})
	}
	if err == nil {
		err = bw.Flush()
	}
	return err
}

// Release implements raft.FSMSnapshot.
func (s *snapshot) Release() { s.v.Close() }

// maxFrame bounds a snapshot frame: one message record and its batch header.
const maxFrame = 1 << 31

// Restore implements raft.FSM: the queue's local records are replaced by the snapshot's.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if err := f.st.DeleteQueueRecords(f.id); err != nil {
		return fmt.Errorf("quorum queue %d: restore: %w", f.id, err)
	}
	f.mu.Lock()
	f.live, f.bytes, f.maxSeq = map[uint64]uint32{}, 0, 0
	f.mu.Unlock()
	br := bufio.NewReader(rc)
	var hdr [8]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return fmt.Errorf("quorum queue %d: restore: reading the header: %w", f.id, err)
	}
	maxSeq := binary.BigEndian.Uint64(hdr[:])
	for {
		var lb [4]byte
		if _, err := io.ReadFull(br, lb[:]); err != nil {
			return fmt.Errorf("quorum queue %d: restore: %w", f.id, err)
		}
		n := binary.BigEndian.Uint32(lb[:])
		if n == 0 {
			break
		}
		if n > maxFrame {
			return fmt.Errorf("quorum queue %d: restore: a frame of %d bytes", f.id, n)
		}
		frame := make([]byte, n)
		if _, err := io.ReadFull(br, frame); err != nil {
			return fmt.Errorf("quorum queue %d: restore: %w", f.id, err)
		}
		cmds, err := decodeBatch(frame)
		if err != nil {
			return fmt.Errorf("quorum queue %d: restore: %w", f.id, err)
		}
		f.apply(cmds, func(error) {})
	}
	f.mu.Lock()
	f.maxSeq = max(f.maxSeq, maxSeq)
	f.mu.Unlock()
	if err := f.st.Flush(); err != nil {
		return fmt.Errorf("quorum queue %d: restore: %w", f.id, err)
	}
	return nil
}
