package server

import (
	"errors"
	"testing"

	"github.com/warrenmq/warren/server/queue"
)

// A confirmed publish held in two queues is released in both when its writes succeed, and
// withdrawn from both, before the nack goes out, when one write fails: a message its publisher
// was told was refused is in no queue.
func TestWriteWaitSettlesHeldEntriesBeforeTheConfirm(t *testing.T) {
	for _, writeErr := range []error{nil, errors.New("disk full")} {
		qs := []*queue.Queue{queue.New("a", queue.Options{}), queue.New("b", queue.Options{})}
		var confirmed, fired bool
		var readyAtConfirm []int
		w := newWriteWait(func(ok bool) {
			fired, confirmed = true, ok
			for _, q := range qs {
				readyAtConfirm = append(readyAtConfirm, q.Stats().Ready)
			}
		})
		w.nackable = true
		msg := &queue.Message{Body: []byte("m"), Persistent: true}
		for _, q := range qs {
			res, e, _ := q.PublishHeld(msg, nil)
			if res != queue.Enqueued || e == nil {
				t.Fatalf("PublishHeld = %v, %v", res, e)
			}
			w.hold(q, e)
			w.add()
		}
		w.release()
		w.done(nil)
		if fired {
			t.Fatal("confirmed before the last write finished")
		}
		w.done(writeErr)
		if !fired || confirmed != (writeErr == nil) {
			t.Fatalf("write error %v: fired %v, ack %v", writeErr, fired, confirmed)
		}
		for i, q := range qs {
			e, _ := q.Get(true)
			if writeErr == nil && (e == nil || readyAtConfirm[i] != 1) {
				t.Errorf("queue %s: got %v after the ack (ready %d at confirm), want the message", q.Name(), e, readyAtConfirm[i])
			}
			if writeErr != nil && (e != nil || readyAtConfirm[i] != 0) {
				t.Errorf("queue %s: got %v after the nack (ready %d at confirm), want nothing", q.Name(), e, readyAtConfirm[i])
			}
		}
	}
}
