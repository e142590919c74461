package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

// RaftLog is one Raft group's log and stable store (raft.LogStore and raft.StableStore) kept
// in the store: entries under 'L' group index, stable values under 'S' group key. Every
// write goes through the group-commit writer, so the appends of every group on the node share
// one fsync per batch, and returns once it is committed (durable with SyncWrites).
//
// A group is any uint64 the caller chooses (the cluster's metadata group, a queue's ID).
type RaftLog struct {
	s     *Store
	group uint64

	mu          sync.Mutex // first and last; writes of one group are not concurrent in raft
	first, last uint64     // 0, 0: no entries
}

// errRaftNotFound is what hashicorp/raft expects from a stable store for a missing key (it
// compares the text).
var errRaftNotFound = errors.New("not found")

// RaftLog opens group's log, reading its first and last index.
func (s *Store) RaftLog(group uint64) (*RaftLog, error) {
	l := &RaftLog{s: s, group: group}
	err := s.db.View(func(txn *badger.Txn) error {
		pre := raftLogPrefix(group)
		for _, reverse := range []bool{false, true} {
			opts := badger.DefaultIteratorOptions
			opts.PrefetchValues, opts.Reverse, opts.Prefix = false, reverse, pre
			it := txn.NewIterator(opts)
			seek := pre
			if reverse {
				seek = raftLogKey(group, ^uint64(0))
			}
			it.Seek(seek)
			if it.Valid() {
				i, err := parseRaftLogIndex(it.Item().Key())
				if err != nil {
					it.Close()
					return err
				}
				if reverse {
					l.last = i
				} else {
					l.first = i
				}
			}
			it.Close()
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: raft log of group %d: %w", group, err)
	}
	return l, nil
}

// FirstIndex implements raft.LogStore.
func (l *RaftLog) FirstIndex() (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.first, nil
}

// LastIndex implements raft.LogStore.
func (l *RaftLog) LastIndex() (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last, nil
}

// GetLog implements raft.LogStore: raft.ErrLogNotFound for an index it does not hold.
func (l *RaftLog) GetLog(index uint64, out *raft.Log) error {
	err := l.s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(raftLogKey(l.group, index))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error { return decodeRaftLog(v, index, out) })
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return fmt.Errorf("store: raft log %d of group %d: %w", index, l.group, err)
	}
	return nil
}

// StoreLog implements raft.LogStore.
func (l *RaftLog) StoreLog(log *raft.Log) error { return l.StoreLogs([]*raft.Log{log}) }

// StoreLogs implements raft.LogStore: the entries are committed in order, in the writer's
// next batch(es), before it returns. Entries that carry data count as message writes for the
// disk guard: they are refused (ErrDiskFull) while the disk is nearly full, as publishes are.
func (l *RaftLog) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	ops := make([]op, len(logs))
	for i, log := range logs {
		ops[i] = op{kind: opSet, key: raftLogKey(l.group, log.Index), val: encodeRaftLog(log), data: len(log.Data) > 0}
	}
	if err := l.s.syncWrites(ops); err != nil {
		return fmt.Errorf("store: raft logs %d-%d of group %d: %w", logs[0].Index, logs[len(logs)-1].Index, l.group, err)
	}
	l.mu.Lock()
	for _, log := range logs {
		if l.first == 0 || log.Index < l.first {
			l.first = log.Index
		}
		l.last = max(l.last, log.Index)
	}
	l.mu.Unlock()
	return nil
}

// DeleteRange implements raft.LogStore: entries min to max, inclusive, committed before it
// returns (a follower truncating a conflicting suffix must not see it again after a crash).
func (l *RaftLog) DeleteRange(lo, hi uint64) error {
	l.mu.Lock()
	first, last := l.first, l.last
	l.mu.Unlock()
	lo, hi = max(lo, first), min(hi, last)
	if first == 0 || lo > hi {
		return nil
	}
	ops := make([]op, 0, hi-lo+1)
	for i := lo; i <= hi; i++ {
		ops = append(ops, op{kind: opDel, key: raftLogKey(l.group, i)})
	}
	if err := l.s.syncWrites(ops); err != nil {
		return fmt.Errorf("store: deleting raft logs %d-%d of group %d: %w", lo, hi, l.group, err)
	}
	l.mu.Lock()
	switch {
	case lo <= l.first && hi >= l.last:
		l.first, l.last = 0, 0
	case lo <= l.first:
		l.first = hi + 1
	case hi >= l.last:
		l.last = lo - 1
	}
	l.mu.Unlock()
	return nil
}

// Set implements raft.StableStore.
func (l *RaftLog) Set(key, val []byte) error {
	if err := l.s.syncWrite(op{kind: opSet, key: raftStableKey(l.group, key), val: append([]byte(nil), val...)}); err != nil {
		return fmt.Errorf("store: raft %q of group %d: %w", key, l.group, err)
	}
	return nil
}

// Get implements raft.StableStore: an error "not found" for a missing key, as raft expects.
func (l *RaftLog) Get(key []byte) ([]byte, error) {
	var out []byte
	err := l.s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(raftStableKey(l.group, key))
		if err != nil {
			return err
		}
		out, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, errRaftNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: raft %q of group %d: %w", key, l.group, err)
	}
	return out, nil
}

// SetUint64 implements raft.StableStore.
func (l *RaftLog) SetUint64(key []byte, val uint64) error {
	return l.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 implements raft.StableStore: 0 and "not found" for a missing key.
func (l *RaftLog) GetUint64(key []byte) (uint64, error) {
	v, err := l.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("store: raft %q of group %d: %d bytes, want 8", key, l.group, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// DropRaftGroup deletes every entry and stable value of group (a queue whose replica left
// this node), committed before it returns.
func (s *Store) DropRaftGroup(group uint64) error {
	var keys [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		for _, pre := range [][]byte{raftLogPrefix(group), raftStableKey(group, nil)} {
			opts := badger.DefaultIteratorOptions
			opts.PrefetchValues, opts.Prefix = false, pre
			it := txn.NewIterator(opts)
			for it.Rewind(); it.Valid(); it.Next() {
				keys = append(keys, it.Item().KeyCopy(nil))
			}
			it.Close()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: raft group %d: %w", group, err)
	}
	ops := make([]op, len(keys))
	for i, k := range keys {
		ops[i] = op{kind: opDel, key: k}
	}
	if err := s.syncWrites(ops); err != nil {
		return fmt.Errorf("store: dropping raft group %d: %w", group, err)
	}
	return nil
}

// encodeRaftLog is 1 | term u64 | type u8 | appended-at unix ns i64 | data len u32 | data |
// extensions. The index is the key's.
func encodeRaftLog(l *raft.Log) []byte {
	b := make([]byte, 0, 1+8+1+8+4+len(l.Data)+len(l.Extensions))
	b = append(b, recordV1)
	b = binary.BigEndian.AppendUint64(b, l.Term)
	b = append(b, byte(l.Type))
	var at int64
	if !l.AppendedAt.IsZero() {
		at = l.AppendedAt.UnixNano()
	}
	b = binary.BigEndian.AppendUint64(b, uint64(at))
	b = binary.BigEndian.AppendUint32(b, uint32(len(l.Data)))
	b = append(b, l.Data...)
	return append(b, l.Extensions...)
}

func decodeRaftLog(v []byte, index uint64, out *raft.Log) error {
	const head = 1 + 8 + 1 + 8 + 4
	if len(v) < head || v[0] != recordV1 {
		return fmt.Errorf("%w: raft log record of %d bytes", ErrCorrupt, len(v))
	}
	n := int(binary.BigEndian.Uint32(v[18:]))
	if len(v) < head+n {
		return fmt.Errorf("%w: raft log record of %d bytes holds %d of data", ErrCorrupt, len(v), n)
	}
	*out = raft.Log{Index: index, Term: binary.BigEndian.Uint64(v[1:]), Type: raft.LogType(v[9])}
	if at := int64(binary.BigEndian.Uint64(v[10:])); at != 0 {
		out.AppendedAt = time.Unix(0, at)
	}
	if n > 0 {
		out.Data = append([]byte(nil), v[head:head+n]...)
	}
	if len(v) > head+n {
		out.Extensions = append([]byte(nil), v[head+n:]...)
	}
	return nil
}
