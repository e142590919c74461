package store

import (
	"encoding/binary"
	"fmt"
)

// This file is the only place keys are built or parsed. See doc.go for the layout.

// Record types: the first byte of every key.
const (
	tagMeta       = 0x00 // 0x00 'v' schema version, 0x00 'q' queue-ID sequence, 0x00 'f' flush marker
	tagExchange   = 'E'
	tagQueue      = 'Q'
	tagBinding    = 'B'
	tagMessage    = 'M'
	tagShared     = 'P'
	tagDeliveries = 'R'
	tagClean      = 'C'
	tagAccess     = 'A' // access records (access.go)
	tagRaftLog    = 'L' // Raft log entries (raftlog.go)
	tagRaftStable = 'S' // Raft stable values (raftlog.go)
	tagDedup      = 'D' // deduplication cache ids (dedup.go)
	tagDelayed    = 'H' // held messages of delayed-message exchanges (delayed.go)
)

// Lengths of the fixed-width keys.
const (
	msgKeyLen    = 1 + 8 + 8 // 'M' queueID seq, and 'R' queueID seq
	sharedKeyLen = 1 + 8     // 'P' msgID
	hashLen      = 32
)

// Fixed keys.
func schemaKey() []byte   { return []byte{tagMeta, 'v'} }
func queueSeqKey() []byte { return []byte{tagMeta, 'q'} }
func delaySeqKey() []byte { return []byte{tagMeta, 'd'} }
func cleanKey() []byte    { return []byte{tagClean} }

// flushKey is set and dropped at once to make Badger flush its memtables (flushMemtables).
func flushKey() []byte { return []byte{tagMeta, 'f'} }

// prefix is the one-byte prefix of every key of one record type.
func prefix(tag byte) []byte { return []byte{tag} }

// appendName appends a name with its one-byte length prefix. AMQP short strings are at most
// 255 bytes, so a longer name is an error, never a silent cut.
func appendName(dst []byte, s string) ([]byte, error) {
	if len(s) > 255 {
		return nil, fmt.Errorf("%w: name of %d bytes (at most 255): %.40q…", ErrInvalid, len(s), s)
	}
	dst = append(dst, byte(len(s)))
	return append(dst, s...), nil
}

// readName reads a length-prefixed name from the front of b.
func readName(b []byte) (string, []byte, bool) {
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return "", nil, false
	}
	n := int(b[0])
	return string(b[1 : 1+n]), b[1+n:], true
}

func twoNameKey(tag byte, a, b string) ([]byte, error) {
	k := make([]byte, 0, 3+len(a)+len(b))
	k = append(k, tag)
	k, err := appendName(k, a)
	if err != nil {
		return nil, err
	}
	return appendName(k, b)
}

func parseTwoNameKey(tag byte, k []byte) (string, string, error) {
	if len(k) < 1 || k[0] != tag {
		return "", "", badKey(k)
	}
	a, rest, ok := readName(k[1:])
	if !ok {
		return "", "", badKey(k)
	}
	b, rest, ok := readName(rest)
	if !ok || len(rest) != 0 {
		return "", "", badKey(k)
	}
	return a, b, nil
}

// exchangeKey is 'E' vhost name.
func exchangeKey(vhost, name string) ([]byte, error) { return twoNameKey(tagExchange, vhost, name) }

func parseExchangeKey(k []byte) (vhost, name string, err error) {
	return parseTwoNameKey(tagExchange, k)
}

// queueKey is 'Q' vhost name.
func queueKey(vhost, name string) ([]byte, error) { return twoNameKey(tagQueue, vhost, name) }

func parseQueueKey(k []byte) (vhost, name string, err error) { return parseTwoNameKey(tagQueue, k) }

// bindingKey is 'B' vhost source destKind dest routingKey argsHash.
func bindingKey(b *Binding) ([]byte, error) {
	k := make([]byte, 0, 1+4+len(b.Vhost)+len(b.Source)+1+len(b.Dest)+len(b.RoutingKey)+hashLen)
	k = append(k, tagBinding)
	var err error
	if k, err = appendName(k, b.Vhost); err != nil {
		return nil, err
	}
	if k, err = appendName(k, b.Source); err != nil {
		return nil, err
	}
	k = append(k, b.DestKind)
	if k, err = appendName(k, b.Dest); err != nil {
		return nil, err
	}
	if k, err = appendName(k, b.RoutingKey); err != nil {
		return nil, err
	}
	return append(k, b.ArgsHash[:]...), nil
}

// parseBindingKey fills every field of b but Args.
func parseBindingKey(k []byte, b *Binding) error {
	if len(k) < 1 || k[0] != tagBinding {
		return badKey(k)
	}
	var ok bool
	rest := k[1:]
	if b.Vhost, rest, ok = readName(rest); !ok {
		return badKey(k)
	}
	if b.Source, rest, ok = readName(rest); !ok || len(rest) < 1 {
		return badKey(k)
	}
	b.DestKind, rest = rest[0], rest[1:]
	if b.Dest, rest, ok = readName(rest); !ok {
		return badKey(k)
	}
	if b.RoutingKey, rest, ok = readName(rest); !ok || len(rest) != hashLen {
		return badKey(k)
	}
	copy(b.ArgsHash[:], rest)
	return nil
}

// appendSeqKey appends tag queueID seq: the shape of 'M' and 'R' keys.
func appendSeqKey(dst []byte, tag byte, queueID, seq uint64) []byte {
	dst = append(dst, tag)
	dst = binary.BigEndian.AppendUint64(dst, queueID)
	return binary.BigEndian.AppendUint64(dst, seq)
}

// msgKey is 'M' queueID seq.
func msgKey(queueID, seq uint64) []byte {
	return appendSeqKey(make([]byte, 0, msgKeyLen), tagMessage, queueID, seq)
}

// deliveriesKey is 'R' queueID seq.
func deliveriesKey(queueID, seq uint64) []byte {
	return appendSeqKey(make([]byte, 0, msgKeyLen), tagDeliveries, queueID, seq)
}

// queuePrefix is tag queueID: every 'M' (or 'R') key of one queue.
func queuePrefix(tag byte, queueID uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{tag}, queueID)
}

// parseSeqKey parses an 'M' or 'R' key.
func parseSeqKey(tag byte, k []byte) (queueID, seq uint64, err error) {
	if len(k) != msgKeyLen || k[0] != tag {
		return 0, 0, badKey(k)
	}
	return binary.BigEndian.Uint64(k[1:9]), binary.BigEndian.Uint64(k[9:]), nil
}

// sharedKey is 'P' msgID.
func sharedKey(msgID uint64) []byte {
	return binary.BigEndian.AppendUint64(append(make([]byte, 0, sharedKeyLen), tagShared), msgID)
}

func parseSharedKey(k []byte) (uint64, error) {
	if len(k) != sharedKeyLen || k[0] != tagShared {
		return 0, badKey(k)
	}
	return binary.BigEndian.Uint64(k[1:]), nil
}

// delayedPrefix is 'D' vhost exchange: every held message of one delayed-message exchange.
func delayedPrefix(vhost, exchange string) ([]byte, error) {
	return twoNameKey(tagDelayed, vhost, exchange)
}

// delayedKey is 'D' vhost exchange due seq: held messages in due-time order, so the next due
// ones are a seek and a short scan away.
func delayedKey(prefix []byte, due int64, seq uint64) []byte {
	k := make([]byte, 0, len(prefix)+16)
	k = append(k, prefix...)
	k = binary.BigEndian.AppendUint64(k, uint64(due))
	return binary.BigEndian.AppendUint64(k, seq)
}

// parseDelayedKey parses a 'D' key.
func parseDelayedKey(k []byte) (vhost, exchange string, due int64, seq uint64, err error) {
	if len(k) < 1 || k[0] != tagDelayed {
		return "", "", 0, 0, badKey(k)
	}
	vhost, rest, ok := readName(k[1:])
	if !ok {
		return "", "", 0, 0, badKey(k)
	}
	exchange, rest, ok = readName(rest)
	if !ok || len(rest) != 16 {
		return "", "", 0, 0, badKey(k)
	}
	return vhost, exchange, int64(binary.BigEndian.Uint64(rest)), binary.BigEndian.Uint64(rest[8:]), nil
}

func badKey(k []byte) error {
	if len(k) > 64 {
		k = k[:64]
	}
	return fmt.Errorf("%w: malformed key %q", ErrCorrupt, k)
}

// raftLogKey is 'L' group index.
func raftLogKey(group, index uint64) []byte {
	k := make([]byte, 17)
	k[0] = tagRaftLog
	binary.BigEndian.PutUint64(k[1:], group)
	binary.BigEndian.PutUint64(k[9:], index)
	return k
}

// raftLogPrefix is 'L' group: every entry of one group.
func raftLogPrefix(group uint64) []byte { return raftLogKey(group, 0)[:9] }

// parseRaftLogIndex is the index of an 'L' key.
func parseRaftLogIndex(k []byte) (uint64, error) {
	if len(k) != 17 || k[0] != tagRaftLog {
		return 0, badKey(k)
	}
	return binary.BigEndian.Uint64(k[9:]), nil
}

// raftStableKey is 'S' group key.
func raftStableKey(group uint64, key []byte) []byte {
	k := make([]byte, 9, 9+len(key))
	k[0] = tagRaftStable
	binary.BigEndian.PutUint64(k[1:], group)
	return append(k, key...)
}
