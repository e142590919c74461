package vhost

import (
	"fmt"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/server/queue"
	"github.com/warrenmq/warren/store"
)

// journal adapts the store to one queue's queue.Journal.
type journal struct {
	st  *store.Store
	id  uint64
	log zerolog.Logger
	// recoveredThrough is the last seq recovered after an unclean shutdown: those messages may
	// have been delivered before the crash, so they come back redelivered (the spec's "may have
	// been delivered"). 0 after a clean shutdown.
	recoveredThrough uint64
}

func storeMessage(m *queue.Message, durable bool, expires int64) *store.Message {
	return &store.Message{
		Exchange:   m.Exchange,
		RoutingKey: m.RoutingKey,
		Properties: m.RawProperties,
		Body:       m.Body,
		Persistent: durable,
		Priority:   m.Properties.Priority,
		Expiry:     expires,
	}
}

func (j *journal) ref(e *queue.Entry) store.Ref { return store.Ref{QueueID: j.id, Seq: e.Seq} }

// level is the journal of one priority level above 0 of j's queue.
func (j *journal) level(l uint8) *journal {
	lj := *j
	lj.id = store.LevelQueueID(j.id, l)
	return &lj
}

// Append implements queue.Journal.
func (j *journal) Append(e *queue.Entry, durable bool, done func(error)) {
	if durable && e.Msg.StoreID != 0 {
		j.st.Append(j.ref(e), e.Msg.StoreID, storeMessage(e.Msg, true, e.Expires), done)
		return
	}
	j.st.Append(j.ref(e), 0, storeMessage(e.Msg, durable, e.Expires), done)
}

// Remove implements queue.Journal.
func (j *journal) Remove(e *queue.Entry) { j.st.Remove(j.ref(e), e.Msg.StoreID, nil) }

// SetDeliveries implements queue.Journal.
func (j *journal) SetDeliveries(e *queue.Entry) { j.st.SetDeliveries(j.ref(e), e.Deliveries, nil) }

// Drop implements queue.Journal.
func (j *journal) Drop(after, through uint64) { j.st.PurgeRange(j.id, after, through) }

// Read implements queue.Journal: the store is read on a goroutine of its own, never under the
// queue's lock, and the result is handed back through done.
func (j *journal) Read(after uint64, maxCount, maxBytes int, done func([]*queue.Entry, error)) {
	go func() { done(j.read(after, maxCount, maxBytes)) }()
}

func (j *journal) read(after uint64, maxCount, maxBytes int) ([]*queue.Entry, error) {
	recs, err := j.st.ReadQueue(j.id, after, maxCount, maxBytes)
	if err != nil {
		j.log.Error().Err(err).Uint64("queue_id", j.id).Msg("reading queued messages from the store")
		return nil, fmt.Errorf("reading queue %d after seq %d: %w", j.id, after, err)
	}
	es := make([]*queue.Entry, 0, len(recs))
	for i := range recs {
		r := &recs[i]
		m := &queue.Message{
			Exchange:      r.Msg.Exchange,
			RoutingKey:    r.Msg.RoutingKey,
			RawProperties: r.Msg.Properties,
			Body:          r.Msg.Body,
			Persistent:    r.Msg.Persistent,
		}
		if r.Msg.Persistent {
			m.StoreID = r.MsgID
		}
		if err := m.Properties.Decode(r.Msg.Properties); err != nil {
			// Written by us, so this is corruption: keep the message, with the raw properties
			// it came with, rather than drop it.
			j.log.Error().Err(err).Uint64("queue_id", j.id).Uint64("seq", r.Seq).Msg("stored message has undecodable properties")
		}
		// A record without a deadline gets the queue's x-message-ttl from the queue core,
		// which owns the clock.
		es = append(es, &queue.Entry{
			Msg:         m,
			Seq:         r.Seq,
			Stored:      true,
			Deliveries:  r.Deliveries,
			Redelivered: r.HasDeliveries || r.Seq <= j.recoveredThrough,
			Expires:     r.Msg.Expiry,
		})
	}
	return es, nil
}
