package vhost

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
	"github.com/warrenmq/warren/exchange"
	"github.com/warrenmq/warren/server/queue"
	"github.com/warrenmq/warren/store"
)

// Message deduplication, as LavinMQ has it: a queue or exchange declared with
// x-message-deduplication true remembers the ids of the messages it took (the value of a
// header, x-deduplication-header unless the x-deduplication-header argument names another)
// and drops a later message with an id it remembers. The publisher is told its message was
// taken (a confirm is an ack, mandatory does not return it): for an at-least-once publisher
// that retries after a lost confirm, the first copy is the one that counts. A message without
// the header is never a duplicate. The cache holds at most x-cache-size ids (least recently
// seen evicted first) for x-cache-ttl milliseconds each (or the message's own x-cache-ttl
// header), and a durable queue's or exchange's cache is in the store, so it survives a
// restart.

// The argument and header names.
const (
	argDedup       = "x-message-deduplication"
	argCacheSize   = "x-cache-size"
	argCacheTTL    = "x-cache-ttl"
	argDedupHeader = "x-deduplication-header"
	// hdrCacheTTL is the message header that overrides the cache's TTL for its id.
	hdrCacheTTL = "x-cache-ttl"
)

const (
	// defaultCacheSize is LavinMQ's default x-cache-size.
	defaultCacheSize = 128
	// maxCacheSize bounds x-cache-size: an id costs about 150 bytes of memory.
	maxCacheSize = 10_000_000
	// maxInlineID is the longest id kept as it is; a longer one is kept as its SHA-256.
	maxInlineID = 64
)

// dedupArgs are the deduplication arguments of a queue or exchange.
type dedupArgs struct {
	on     bool
	size   int
	ttl    int64 // milliseconds; 0: ids never expire
	header string
}

// parseDedupArgs validates the deduplication arguments in m; fail builds the 406 for one key.
// The arguments are checked whether or not x-message-deduplication is true.
func parseDedupArgs(m map[string]any, fail func(key, reason string) error) (dedupArgs, error) {
	da := dedupArgs{size: defaultCacheSize, header: argDedupHeader}
	if v, ok := m[argDedup]; ok {
		b, isBool := v.(bool)
		if !isBool {
			return da, fail(argDedup, "{unacceptable_type,"+binding.TypeName(v)+"}")
		}
		da.on = b
	}
	positive := func(key string, limit int64) (int64, bool, error) {
		v, ok := m[key]
		if !ok {
			return 0, false, nil
		}
		n, bad := intArg(v)
		switch {
		case bad != "":
			return 0, false, fail(key, bad)
		case n == 0:
			return 0, false, fail(key, "{value_zero,0}")
		case n < 0:
			return 0, false, fail(key, fmt.Sprintf("{value_negative,%d}", n))
		case n > limit:
			return 0, false, fail(key, fmt.Sprintf("{value_too_large,%d}", n))
		}
		return n, true, nil
	}
	if n, ok, err := positive(argCacheSize, maxCacheSize); err != nil {
		return da, err
	} else if ok {
		da.size = int(n)
	}
	if n, ok, err := positive(argCacheTTL, maxExpiry); err != nil {
		return da, err
	} else if ok {
		da.ttl = n
	}
	if v, ok := m[argDedupHeader]; ok {
		s, isString := v.(string)
		switch {
		case !isString:
			return da, fail(argDedupHeader, "{unacceptable_type,"+binding.TypeName(v)+"}")
		case s == "":
			return da, fail(argDedupHeader, "empty_header_name")
		}
		da.header = s
	}
	return da, nil
}

// exchangeArgError is the 406 for an invalid exchange argument, worded as RabbitMQ words its
// queue argument errors.
func exchangeArgError(key, name, vhost, reason string) error {
	return amqpwire.NewChannelError(amqpwire.CodePreconditionFailed, 0, 0,
		"invalid arg '%s' for exchange '%s' in vhost '%s': %s", key, name, vhost, reason)
}

// ValidateExchange checks the arguments of an exchange about to be created in vhost:
// RabbitMQ's checks (exchange.Definition.Validate) and the deduplication arguments. The error
// carries the reply text of a 406.
func ValidateExchange(d exchange.Definition, vhost string) error {
	_, err := exchangeDedupArgs(d, vhost)
	return err
}

func exchangeDedupArgs(d exchange.Definition, vhost string) (dedupArgs, error) {
	if err := d.Validate(vhost); err != nil {
		return dedupArgs{}, amqpwire.NewChannelError(amqpwire.CodePreconditionFailed, 0, 0, "%s", err.Error())
	}
	m, err := d.Args.Map()
	if err != nil {
		return dedupArgs{}, amqpwire.NewChannelError(amqpwire.CodePreconditionFailed, 0, 0, "invalid arguments table: %v", err)
	}
	return parseDedupArgs(m, func(key, reason string) error { return exchangeArgError(key, d.Name, vhost, reason) })
}

// nowClock is what a cache needs of a clock.
type nowClock interface{ Now() int64 }

// dedupCache is the id cache of one queue or exchange: a map over a doubly linked list in
// recency order (head least recent). Safe for concurrent use.
type dedupCache struct {
	args  dedupArgs
	clock nowClock
	log   zerolog.Logger
	owner store.DedupCache

	mu         sync.Mutex
	st         *store.Store // nil: not persisted (or no longer: the owner was deleted)
	ids        map[string]*dedupEntry
	head, tail *dedupEntry
	order      uint64 // the last order handed out

	// dropped counts the duplicates dropped, for logs and listings.
	dropped atomic.Uint64
}

type dedupEntry struct {
	id         string
	expires    int64 // unix ms; 0 never
	order      uint64
	prev, next *dedupEntry
}

// newDedupCache returns the cache for da, nil when deduplication is off. st, when not nil,
// keeps the ids under owner.
func (v *Vhost) newDedupCache(da dedupArgs, kind byte, name string, st *store.Store) *dedupCache {
	if !da.on {
		return nil
	}
	return &dedupCache{
		args:  da,
		clock: v.clock,
		log:   v.log,
		owner: store.DedupCache{Vhost: v.name, Kind: kind, Name: name},
		st:    st,
		ids:   make(map[string]*dedupEntry, min(da.size, 1024)),
	}
}

// messageID returns the id msg carries for c, and the TTL of that id in milliseconds (0 for
// none); ok is false when msg has no such header.
func (c *dedupCache) messageID(msg *queue.Message) (id string, ttl int64, ok bool) {
	h := msg.Properties.Headers
	if len(h) == 0 {
		return "", 0, false
	}
	v, ok, err := h.Get(c.args.header)
	if err != nil || !ok {
		return "", 0, false
	}
	enc, err := amqpwire.AppendField(nil, "", v)
	if err != nil {
		return "", 0, false
	}
	// A field with the empty name: a zero length byte, then the value's type and bytes. The
	// type keeps apart values that print the same (the string "7" and the integer 7).
	raw := enc[1:]
	id = string(raw)
	if len(raw) > maxInlineID {
		sum := sha256.Sum256(raw)
		id = "\xff" + string(sum[:]) // no AMQP field type is 0xff
	}
	ttl = c.args.ttl
	if tv, ok, _ := h.Get(hdrCacheTTL); ok {
		if n, isInt := asInt(tv); isInt && n > 0 {
			ttl = min(n, maxExpiry)
		}
	}
	return id, ttl, true
}

// admit records msg's id and reports whether msg is a duplicate: its id is in the cache and
// has not expired. A message without an id is never one. A duplicate's id becomes the most
// recently seen; its expiry stays.
func (c *dedupCache) admit(msg *queue.Message) (id string, duplicate bool) {
	id, ttl, ok := c.messageID(msg)
	if !ok {
		return "", false
	}
	now := c.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.ids[id]; e != nil {
		if e.expires == 0 || e.expires > now {
			c.unlink(e)
			c.pushBack(e)
			c.persist(e)
			c.dropped.Add(1)
			return id, true
		}
		c.remove(e) // expired: admitted again below, with a new window
	}
	for len(c.ids) >= c.args.size && c.head != nil {
		c.remove(c.head)
	}
	e := &dedupEntry{id: id}
	if ttl > 0 {
		e.expires = now + ttl
	}
	c.ids[id] = e
	c.pushBack(e)
	c.persist(e)
	return id, false
}

// forget removes id, admitted for a message that was then refused, so a retry is taken.
func (c *dedupCache) forget(id string) {
	if id == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.ids[id]; e != nil {
		c.remove(e)
	}
}

// Len is how many ids the cache holds, expired ones included until they are seen or evicted.
func (c *dedupCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ids)
}

// stats is what listings show of c, which may be nil (no deduplication): whether there is a
// cache, the duplicates it dropped and the ids it holds.
func (c *dedupCache) stats() (on bool, dropped, ids uint64) {
	if c == nil {
		return false, 0, 0
	}
	return true, c.dropped.Load(), uint64(c.Len())
}

// load fills the cache from the store at recovery: ids in recency order, expired ones and
// those beyond the size deleted.
func (c *dedupCache) load() {
	if c.st == nil {
		return
	}
	entries, err := c.st.DedupEntries(c.owner)
	if err != nil {
		c.log.Error().Err(err).Str("name", c.owner.Name).Msg("deduplication cache not recovered; it starts empty")
		return
	}
	slices.SortFunc(entries, func(a, b store.DedupEntry) int {
		switch {
		case a.Order < b.Order:
			return -1
		case a.Order > b.Order:
			return 1
		}
		return 0
	})
	now := c.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, se := range entries {
		if se.Expires != 0 && se.Expires <= now {
			c.st.DeleteDedup(c.owner, se.ID)
			continue
		}
		for len(c.ids) >= c.args.size && c.head != nil {
			c.remove(c.head)
		}
		e := &dedupEntry{id: string(se.ID), expires: se.Expires, order: se.Order}
		c.ids[e.id] = e
		c.link(e)
		c.order = max(c.order, se.Order)
	}
}

// pushBack makes e the most recent, with a new order. c.mu is held.
func (c *dedupCache) pushBack(e *dedupEntry) {
	c.order++
	e.order = c.order
	c.link(e)
}

// link appends e at the tail. c.mu is held.
func (c *dedupCache) link(e *dedupEntry) {
	e.prev, e.next = c.tail, nil
	if c.tail != nil {
		c.tail.next = e
	} else {
		c.head = e
	}
	c.tail = e
}

func (c *dedupCache) unlink(e *dedupEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		c.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		c.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

// remove drops e from the cache and the store. c.mu is held.
func (c *dedupCache) remove(e *dedupEntry) {
	c.unlink(e)
	delete(c.ids, e.id)
	if c.st != nil {
		c.st.DeleteDedup(c.owner, []byte(e.id))
	}
}

// persist writes e to the store, ordered before the message's own writes. c.mu is held.
func (c *dedupCache) persist(e *dedupEntry) {
	if c.st != nil {
		c.st.PutDedup(c.owner, store.DedupEntry{ID: []byte(e.id), Order: e.order, Expires: e.expires})
	}
}

// dedupQueues removes from qs, in place, the queues for which msg is a duplicate, and reports
// whether there were any: the message counts as taken by them.
func dedupQueues(msg *queue.Message, qs []*Queue) ([]*Queue, bool) {
	kept, dropped := qs[:0], false
	for _, q := range qs {
		if q.dedup != nil {
			if _, dup := q.dedup.admit(msg); dup {
				dropped = true
				continue
			}
		}
		kept = append(kept, q)
	}
	return kept, dropped
}

// forgetQueueID undoes a queue's admit of msg, which the queue then did not take.
func forgetQueueID(q *Queue, msg *queue.Message) {
	if q.dedup == nil {
		return
	}
	if id, _, ok := q.dedup.messageID(msg); ok {
		q.dedup.forget(id)
	}
}

// dropDedupLocked forgets c's stored ids as its owner is deleted (in persist). The caller
// holds defs and mu.
func (v *Vhost) dropDedupLocked(c *dedupCache) {
	if c == nil {
		return
	}
	c.mu.Lock()
	persisted := c.st != nil
	c.st = nil
	c.mu.Unlock()
	if persisted {
		owner := c.owner
		v.record(func(st *store.Store) error { return st.DropDedup(owner) })
	}
}

// freshDedup drops whatever ids the store has under a name about to be declared (left by a
// crash between a delete and its drop), so the new cache starts empty.
func (v *Vhost) freshDedup(kind byte, name string) error {
	if v.st == nil {
		return nil
	}
	return v.st.DropDedup(store.DedupCache{Vhost: v.name, Kind: kind, Name: name})
}
