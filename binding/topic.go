package binding

import (
	"slices"
	"strings"
	"sync"
)

// Topic binding keys and routing keys are lists of words separated by '.'. In a binding key the
// word "*" matches exactly one word and "#" matches zero or more words; every other word
// matches itself. As in RabbitMQ (rabbit_db_topic_exchange split_topic_key), the empty key has
// no words at all while every '.' separates two words, so "a..b" has three words, the middle one
// empty, and "a." has two. Hence "#" matches every routing key including "", "a.#" matches "a",
// "*" does not match "" and the binding key "" matches only the routing key "".
//
// RabbitMQ accepts every binding key (the wire already limits it to 255 bytes), "#" and "*"
// inside a longer word ("a#", "*b") being plain literals; so there is nothing to validate.

// Topic is a trie of topic binding keys, each leading to the set of destinations bound with that
// key. Match walks it once per routing-key word, so routing never scans all bindings.
//
// Topic is not safe for concurrent use: Match may run concurrently with other Match calls, but
// Add and Remove need exclusive access (the topic exchange holds a lock around it). A Topic
// must not be copied.
type Topic struct {
	root   topicNode
	n      int
	lastID uint64 // of nodes

	// Destinations are interned: nodes hold 4-byte ids, and Match deduplicates by id.
	ids   map[Destination]uint32
	dests []Destination // by id; the zero Destination in free slots
	refs  []uint32      // (key, destination) pairs per id
	free  []uint32      // ids to reuse
	marks sync.Pool     // of *[]uint64, bitsets over ids for deduplicating large results
}

// topicNode is one word position of the trie. Literal words, "*" and "#" lead to separate
// children so that Match never has to look a wildcard up by name.
type topicNode struct {
	words map[string]*topicNode
	star  *topicNode
	hash  *topicNode
	// isHash is true for a node reached through a "#" word: it may consume any number of
	// further routing-key words while staying where it is.
	isHash bool
	// id names the node in a nodeSet's map; a map of ids, unlike a map of pointers, lets
	// Match keep its node buffers on the stack.
	id    uint64
	dests idSet // interned destinations bound with the key that ends here
}

// NewTopic returns an empty trie.
func NewTopic() *Topic {
	return &Topic{}
}

// Len returns the number of (binding key, destination) pairs in the trie.
func (t *Topic) Len() int {
	return t.n
}

// Add records that d is bound with bindingKey. It returns false if that pair was already present.
func (t *Topic) Add(bindingKey string, d Destination) bool {
	n := &t.root
	forEachWord(bindingKey, func(w string) {
		n = n.child(w, &t.lastID)
	})
	id, known := t.ids[d]
	if known && n.dests.contains(id) {
		return false
	}
	if !known {
		id = t.intern(d)
	}
	n.dests.add(id)
	t.refs[id]++
	t.n++
	return true
}

// intern gives d an id, reusing a freed one if there is one.
func (t *Topic) intern(d Destination) uint32 {
	if t.ids == nil {
		t.ids = make(map[Destination]uint32)
	}
	// The name may be a slice of a larger buffer (a frame); keep a copy of its own.
	d.Name = strings.Clone(d.Name)
	var id uint32
	if k := len(t.free); k > 0 {
		id, t.free = t.free[k-1], t.free[:k-1]
		t.dests[id] = d
	} else {
		id = uint32(len(t.dests))
		t.dests = append(t.dests, d)
		t.refs = append(t.refs, 0)
	}
	t.ids[d] = id
	return id
}

// release drops one pair's reference to id, freeing the id with its last pair.
func (t *Topic) release(id uint32) {
	t.refs[id]--
	if t.refs[id] == 0 {
		delete(t.ids, t.dests[id])
		t.dests[id] = Destination{}
		t.free = append(t.free, id)
	}
}

// child returns the child of n for word w, creating it with the next id if needed.
func (n *topicNode) child(w string, lastID *uint64) *topicNode {
	newNode := func(isHash bool) *topicNode {
		*lastID++
		return &topicNode{isHash: isHash, id: *lastID}
	}
	switch w {
	case "*":
		if n.star == nil {
			n.star = newNode(false)
		}
		return n.star
	case "#":
		if n.hash == nil {
			n.hash = newNode(true)
		}
		return n.hash
	}
	c := n.words[w]
	if c == nil {
		if n.words == nil {
			n.words = make(map[string]*topicNode)
		}
		c = newNode(false)
		// The key may be a slice of a larger buffer (a frame); keep only the word.
		n.words[strings.Clone(w)] = c
	}
	return c
}

// lookup returns the child of n for word w, or nil.
func (n *topicNode) lookup(w string) *topicNode {
	switch w {
	case "*":
		return n.star
	case "#":
		return n.hash
	}
	return n.words[w]
}

// empty reports whether n holds nothing and can be pruned.
func (n *topicNode) empty() bool {
	return n.dests.len() == 0 && len(n.words) == 0 && n.star == nil && n.hash == nil
}

// Remove deletes the pair (bindingKey, d). It returns false if the pair was absent. Nodes left
// without destinations or children are pruned.
func (t *Topic) Remove(bindingKey string, d Destination) bool {
	type step struct {
		parent *topicNode
		word   string
	}
	var buf [8]step
	path := buf[:0]
	n := &t.root
	found := true
	forEachWord(bindingKey, func(w string) {
		if !found {
			return
		}
		c := n.lookup(w)
		if c == nil {
			found = false
			return
		}
		path = append(path, step{n, w})
		n = c
	})
	id, known := t.ids[d]
	if !found || !known || !n.dests.remove(id) {
		return false
	}
	t.release(id)
	t.n--
	for i := len(path) - 1; i >= 0 && n.empty(); i-- {
		p := path[i]
		switch p.word {
		case "*":
			p.parent.star = nil
		case "#":
			p.parent.hash = nil
		default:
			delete(p.parent.words, p.word)
			if len(p.parent.words) == 0 {
				p.parent.words = nil
			}
		}
		n = p.parent
	}
	return true
}

// Match appends to out every destination bound with a key that matches routingKey, each
// destination once however many of its keys match, and returns the extended slice. The order
// of the appended destinations is unspecified. In steady state it allocates only to grow out
// (or when an unusually large number of trie nodes match at once).
func (t *Topic) Match(routingKey string, out []Destination) []Destination {
	// The trie is walked as a nondeterministic automaton: cur holds every node that the words
	// read so far can lead to, each once. A "#" node stays in the set while it consumes words,
	// and entering a node also enters its "#" child (which may match zero words). Keeping each
	// node once per word bounds the work by words × nodes, whatever the wildcards: a plain
	// backtracking walk is exponential on keys like "#.a.#.a.#.a".
	var bufA, bufB [16]*topicNode
	cur := nodeSet{list: bufA[:0]}
	next := nodeSet{list: bufB[:0]}
	cur = cur.add(&t.root)

	rest, more := routingKey, routingKey != ""
	for more && len(cur.list) > 0 {
		var w string
		if i := strings.IndexByte(rest, '.'); i >= 0 {
			w, rest = rest[:i], rest[i+1:]
		} else {
			w, more = rest, false
		}
		next = next.reset()
		for _, n := range cur.list {
			if c := n.words[w]; c != nil {
				next = next.add(c)
			}
			if n.star != nil {
				next = next.add(n.star)
			}
			if n.isHash {
				next = next.add(n)
			}
		}
		cur, next = next, cur
	}

	return t.collect(cur.list, out)
}

// collect appends the destinations bound at the matched nodes, each once.
func (t *Topic) collect(nodes []*topicNode, out []Destination) []Destination {
	sources, total := 0, 0
	for _, n := range nodes {
		if k := n.dests.len(); k > 0 {
			sources++
			total += k
		}
	}
	switch {
	case sources <= 1:
		// One node's ids are distinct already.
		for _, n := range nodes {
			for _, id := range n.dests.list {
				out = append(out, t.dests[id])
			}
		}
	case total <= 32:
		var buf [32]uint32
		seen := buf[:0]
		for _, n := range nodes {
			for _, id := range n.dests.list {
				if !slices.Contains(seen, id) {
					seen = append(seen, id)
					out = append(out, t.dests[id])
				}
			}
		}
	default:
		p := t.getMarks()
		marks := *p
		for _, n := range nodes {
			for _, id := range n.dests.list {
				w, bit := id/64, uint64(1)<<(id%64)
				if marks[w]&bit == 0 {
					marks[w] |= bit
					out = append(out, t.dests[id])
				}
			}
		}
		// Clear only the words that were touched.
		for _, n := range nodes {
			for _, id := range n.dests.list {
				marks[id/64] = 0
			}
		}
		t.marks.Put(p)
	}
	return out
}

// getMarks returns a zeroed bitset with a bit for every id.
func (t *Topic) getMarks() *[]uint64 {
	words := (len(t.dests) + 63) / 64
	if p, _ := t.marks.Get().(*[]uint64); p != nil && len(*p) >= words {
		return p
	}
	m := make([]uint64, words)
	return &m
}

// forEachWord calls fn with each word of a topic key: none for "", otherwise one more than
// the number of dots.
func forEachWord(key string, fn func(w string)) {
	if key == "" {
		return
	}
	for {
		i := strings.IndexByte(key, '.')
		if i < 0 {
			fn(key)
			return
		}
		fn(key[:i])
		key = key[i+1:]
	}
}

// nodeSet is a set of trie nodes in insertion order. Membership is a linear scan while the set
// is small, which is the usual case; past nodeSetScan members it switches to a map. Its methods
// take and return it by value: storing through a pointer would move Match's stack buffers to
// the heap.
type nodeSet struct {
	list []*topicNode
	seen map[uint64]struct{}
}

const nodeSetScan = 32

func (s nodeSet) reset() nodeSet {
	s.list = s.list[:0]
	if s.seen != nil {
		clear(s.seen)
	}
	return s
}

// add inserts n and, transitively, its "#" child.
func (s nodeSet) add(n *topicNode) nodeSet {
	for ; n != nil; n = n.hash {
		if s.seen != nil {
			if _, ok := s.seen[n.id]; ok {
				return s
			}
			s.seen[n.id] = struct{}{}
		} else {
			if slices.Contains(s.list, n) {
				return s
			}
			if len(s.list) == nodeSetScan {
				s.seen = make(map[uint64]struct{}, 2*nodeSetScan)
				for _, m := range s.list {
					s.seen[m.id] = struct{}{}
				}
				s.seen[n.id] = struct{}{}
			}
		}
		s.list = append(s.list, n)
	}
	return s
}

// idSet is the set of interned destinations bound at one trie node. Most nodes hold one or a
// few, kept in a slice; a node bound to many (a "#" shared by thousands of queues) also gets
// an index so that Add and Remove stay constant-time.
type idSet struct {
	list  []uint32
	index map[uint32]int32
}

const idSetScan = 16

func (s *idSet) len() int { return len(s.list) }

func (s *idSet) find(id uint32) int {
	if s.index != nil {
		if i, ok := s.index[id]; ok {
			return int(i)
		}
		return -1
	}
	return slices.Index(s.list, id)
}

func (s *idSet) contains(id uint32) bool { return s.find(id) >= 0 }

// add inserts id, which the caller knows is absent.
func (s *idSet) add(id uint32) {
	s.list = append(s.list, id)
	if s.index != nil {
		s.index[id] = int32(len(s.list) - 1)
	} else if len(s.list) > idSetScan {
		s.index = make(map[uint32]int32, len(s.list))
		for i, e := range s.list {
			s.index[e] = int32(i)
		}
	}
}

func (s *idSet) remove(id uint32) bool {
	i := s.find(id)
	if i < 0 {
		return false
	}
	last := len(s.list) - 1
	if i != last {
		s.list[i] = s.list[last]
		if s.index != nil {
			s.index[s.list[i]] = int32(i)
		}
	}
	s.list = s.list[:last]
	if s.index != nil {
		delete(s.index, id)
		if len(s.list) <= idSetScan/2 {
			s.index = nil
		}
	}
	if len(s.list) == 0 {
		s.list = nil
	}
	return true
}
