package queue

import "github.com/warrenmq/warren/amqpwire"

// PriorityBacklog is a priority queue's backlog (x-max-priority): one backlog per level, the
// highest non-empty level served first, FIFO within a level. A message's level is its priority
// property, capped at the maximum; no priority is level 0. Each level pages on its own.
type PriorityBacklog struct {
	levels []Backlog
}

// NewPriorityBacklog returns a backlog for levels 0..max, each made by mk.
func NewPriorityBacklog(max uint8, mk func(level uint8) Backlog) *PriorityBacklog {
	b := &PriorityBacklog{levels: make([]Backlog, int(max)+1)}
	for i := range b.levels {
		b.levels[i] = mk(uint8(i))
	}
	return b
}

// Level is the level a message belongs to in a queue whose maximum priority is max.
func Level(m *Message, max uint8) uint8 {
	if m.Properties.Flags&amqpwire.FlagPriority == 0 {
		return 0
	}
	return min(m.Properties.Priority, max)
}

func (b *PriorityBacklog) of(e *Entry) Backlog {
	return b.levels[Level(e.Msg, uint8(len(b.levels)-1))]
}

// Push implements Backlog.
func (b *PriorityBacklog) Push(e *Entry) { b.of(e).Push(e) }

// Requeue implements Backlog: a returned entry keeps its priority.
func (b *PriorityBacklog) Requeue(e *Entry) { b.of(e).Requeue(e) }

// ReturnFront implements Backlog: to the front of the entry's priority level.
func (b *PriorityBacklog) ReturnFront(e *Entry) { b.of(e).ReturnFront(e) }

// ReturnBack implements Backlog: to the back of the entry's priority level.
func (b *PriorityBacklog) ReturnBack(e *Entry, after uint64) { b.of(e).ReturnBack(e, after) }

func (b *PriorityBacklog) top() Backlog {
	for i := len(b.levels) - 1; i >= 0; i-- {
		if b.levels[i].Len() > 0 {
			return b.levels[i]
		}
	}
	return nil
}

// Peek implements Backlog.
func (b *PriorityBacklog) Peek() *Entry {
	if l := b.top(); l != nil {
		return l.Peek()
	}
	return nil
}

// Pop implements Backlog.
func (b *PriorityBacklog) Pop() *Entry {
	if l := b.top(); l != nil {
		return l.Pop()
	}
	return nil
}

// Len implements Backlog.
func (b *PriorityBacklog) Len() int {
	n := 0
	for _, l := range b.levels {
		n += l.Len()
	}
	return n
}

// Spilled implements Backlog: some level pages.
func (b *PriorityBacklog) Spilled() bool {
	for _, l := range b.levels {
		if l.Spilled() {
			return true
		}
	}
	return false
}

// Reading implements Backlog: the highest non-empty level waits for a read. Lower levels are
// not served meanwhile: their entries must not overtake the higher ones on disk.
func (b *PriorityBacklog) Reading() bool {
	l := b.top()
	return l != nil && l.Reading()
}

// Bytes implements Backlog.
func (b *PriorityBacklog) Bytes() int {
	n := 0
	for _, l := range b.levels {
		n += l.Bytes()
	}
	return n
}

// Purge implements Backlog.
func (b *PriorityBacklog) Purge(drop func(*Entry)) int {
	n := 0
	for _, l := range b.levels {
		n += l.Purge(drop)
	}
	return n
}

// Expire implements Backlog.
func (b *PriorityBacklog) Expire(now int64, limit int, out []*Entry) []*Entry {
	for _, l := range b.levels {
		if len(out) >= limit {
			break
		}
		out = l.Expire(now, limit-len(out), out)
	}
	return out
}

// NextExpiry implements Backlog.
func (b *PriorityBacklog) NextExpiry() int64 {
	var next int64
	for _, l := range b.levels {
		if t := l.NextExpiry(); t != 0 && (next == 0 || t < next) {
			next = t
		}
	}
	return next
}
