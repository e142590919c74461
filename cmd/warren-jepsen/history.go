package main

import (
	"sort"
	"sync"
	"time"
)

// The operations of a history.
const (
	opPublish = "publish" // a publisher sent the message (it may or may not have arrived)
	opAck     = "ack"     // the broker confirmed it (basic.ack)
	opNack    = "nack"    // the broker refused it (basic.nack)
	opReturn  = "return"  // the broker returned it as unroutable (mandatory), before its ack
	opDeliver = "deliver" // a consumer received it
)

// Event is one step of a run's history.
type Event struct {
	// MS is the time since the start of the run (as a Fault's times), in milliseconds.
	MS     int64  `json:"ms"`
	Client string `json:"client"`
	Node   string `json:"node,omitempty"`
	Op     string `json:"op"`
	ID     string `json:"id"`
	// Detail says more: a return's reply code and text.
	Detail string `json:"detail,omitempty"`
}

// History records what the clients did and saw; safe for concurrent use.
type History struct {
	start  time.Time
	mu     sync.Mutex
	events []Event
}

// newHistory starts a history whose times count from start.
func newHistory(start time.Time) *History { return &History{start: start} }

func (h *History) add(client, node, op, id string) { h.addDetail(client, node, op, id, "") }

func (h *History) addDetail(client, node, op, id, detail string) {
	ms := time.Since(h.start).Milliseconds()
	h.mu.Lock()
	h.events = append(h.events, Event{MS: ms, Client: client, Node: node, Op: op, ID: id, Detail: detail})
	h.mu.Unlock()
}

// Events is a copy of the history so far.
func (h *History) Events() []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Event(nil), h.events...)
}

// Result is the checker's verdict on a history.
type Result struct {
	// Published is every message a publisher sent; Confirmed those the broker acked (and did
	// not return); Nacked those it nacked; Returned those it returned as unroutable;
	// Unconfirmed every published message that is not Confirmed (no answer, nack or return).
	Published   int `json:"published"`
	Confirmed   int `json:"confirmed"`
	Nacked      int `json:"nacked"`
	Returned    int `json:"returned"`
	Unconfirmed int `json:"unconfirmed"`
	// Deliveries counts every delivery, Delivered the distinct messages delivered,
	// Duplicates the deliveries beyond each message's first (allowed: at-least-once).
	Deliveries int `json:"deliveries"`
	Delivered  int `json:"delivered"`
	Duplicates int `json:"duplicates"`
	// UnconfirmedDelivered are messages delivered though never confirmed (allowed).
	UnconfirmedDelivered int `json:"unconfirmed_delivered"`
	// Lost are confirmed messages never delivered; Phantoms messages delivered that no
	// publisher sent. Either is a violation.
	Lost     []string `json:"lost"`
	Phantoms []string `json:"phantoms"`
}

// OK says whether the history keeps the broker's promises.
func (r Result) OK() bool { return len(r.Lost) == 0 && len(r.Phantoms) == 0 }

// Check judges a history: every confirmed message delivered at least once, nothing delivered
// that was never published.
func Check(events []Event) Result {
	published := map[string]bool{}
	acked, nacked, returned := map[string]bool{}, map[string]bool{}, map[string]bool{}
	delivered := map[string]int{}
	var r Result
	for _, e := range events {
		switch e.Op {
		case opPublish:
			published[e.ID] = true
		case opAck:
			acked[e.ID] = true
		case opNack:
			nacked[e.ID] = true
		case opReturn:
			returned[e.ID] = true
		case opDeliver:
			delivered[e.ID]++
			r.Deliveries++
		}
	}
	r.Published, r.Nacked, r.Returned, r.Delivered = len(published), len(nacked), len(returned), len(delivered)
	for id := range published {
		confirmed := acked[id] && !returned[id] && !nacked[id]
		if confirmed {
			r.Confirmed++
			if delivered[id] == 0 {
				r.Lost = append(r.Lost, id)
			}
		} else {
			r.Unconfirmed++
			if delivered[id] > 0 {
				r.UnconfirmedDelivered++
			}
		}
	}
	for id, n := range delivered {
		r.Duplicates += n - 1
		if !published[id] {
			r.Phantoms = append(r.Phantoms, id)
		}
	}
	sort.Strings(r.Lost)
	sort.Strings(r.Phantoms)
	return r
}
