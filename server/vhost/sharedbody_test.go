package vhost

import (
	"sync"
	"testing"

	"github.com/warrenmq/warren/binding"
	"github.com/warrenmq/warren/server/queue"
)

// raftJournal stands for a quorum queue's journal on its leader (its Raft log): it keeps the
// message in its own entries and records which shared body, if any, each one named.
type raftJournal struct {
	mu      sync.Mutex
	storeID []uint64
}

func (j *raftJournal) Append(e *queue.Entry, _ bool, done func(error)) {
	j.mu.Lock()
	j.storeID = append(j.storeID, e.Msg.StoreID)
	j.mu.Unlock()
	if done != nil {
		done(nil)
	}
}
func (j *raftJournal) Remove(*queue.Entry)        {}
func (j *raftJournal) SetDeliveries(*queue.Entry) {}
func (j *raftJournal) Drop(uint64, uint64)        {}
func (j *raftJournal) Read(_ uint64, _, _ int, done func([]*queue.Entry, error)) {
	go done(nil, nil)
}

// A persistent message for two durable classic queues is written once, their records naming
// the shared body; a quorum queue this node leads in a cluster is not counted among them, its
// journal being its Raft log, which keeps the body in its own entries and never releases a
// reference to a shared one (the store would keep that body for ever). With one classic queue
// and the quorum queue the classic queue's record holds the body itself.
func TestSharedBodyOnlyAmongStoreRecords(t *testing.T) {
	v := storeVhost(t, nil)
	mustDeclareX(t, v, "fx", "fanout", nil)
	for _, d := range []QueueDecl{{Name: "c1", Durable: true}, {Name: "c2", Durable: true},
		{Name: "qq", Durable: true, Args: table(t, map[string]any{"x-queue-type": "quorum"})}} {
		if _, err := v.DeclareQueue(nil, d); err != nil {
			t.Fatal(err)
		}
		mustBind(t, v, "fx", binding.DestQueue, d.Name, "")
	}
	qq, err := v.QueueFor(nil, "qq")
	if err != nil {
		t.Fatal(err)
	}
	j := &raftJournal{}
	opts := v.CoreOptions(qq)
	opts.Journal, opts.LevelJournal, opts.Durable = j, nil, true
	qq.SetCore(queue.New("qq", opts))
	qq.SetCommitted(func() (int, int64) { return 0, 0 }) // replicated: led here

	publish := func() *queue.Message {
		t.Helper()
		x, err := v.Exchange("fx")
		if err != nil {
			t.Fatal(err)
		}
		m := &queue.Message{Exchange: "fx", Body: []byte("body"), Persistent: true}
		c := &waitConfirm{}
		var s Scratch
		if routed, refused := v.Publish(x, m, []string{""}, c, &s); !routed || refused {
			t.Fatalf("publish: routed %v refused %v", routed, refused)
		}
		c.wg.Wait()
		return m
	}
	if m := publish(); m.StoreID == 0 {
		t.Fatal("a message for two durable classic queues was not written once, shared")
	}
	if err := v.Unbind(nil, binding.Binding{Source: "fx", Dest: binding.Destination{Kind: binding.DestQueue, Name: "c2"}}); err != nil {
		t.Fatal(err)
	}
	if m := publish(); m.StoreID != 0 {
		t.Fatalf("a message for one classic queue and a quorum queue led here was written as a body shared by both (id %d): the quorum queue's log never releases it", m.StoreID)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.storeID) != 2 {
		t.Fatalf("the quorum queue's journal took %d messages, want 2", len(j.storeID))
	}
}
