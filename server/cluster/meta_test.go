package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenmq/warren/configs"
)

// fakeApplier is a model of named exchanges: what a broker's model is to the metadata group.
type fakeApplier struct {
	mu        sync.Mutex
	exchanges map[string]string // vhost/name -> body
	applied   int               // ApplyMeta calls
	restores  int               // RestoreMeta calls
}

func newFakeApplier() *fakeApplier { return &fakeApplier{exchanges: map[string]string{}} }

func (tn *testNode) applier() Applier {
	if tn.app == nil {
		return nil
	}
	return tn.app
}

func (a *fakeApplier) Attach(*Node) {}

func (a *fakeApplier) ApplyMeta(c Command) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.applied++
	switch c.Op {
	case OpExchangeDeclare, OpQueueDeclare:
		a.exchanges[c.Vhost+"/"+c.Name] = string(c.Body)
	case OpExchangeDelete, OpQueueDelete:
		delete(a.exchanges, c.Vhost+"/"+c.Name)
	case "fail":
		return fmt.Errorf("refused %s", c.Name)
	}
	return nil
}

func (a *fakeApplier) ExportMeta() ([]Command, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []Command
	for k, body := range a.exchanges {
		vh, name, _ := strings.Cut(k, "/")
		out = append(out, Command{Op: OpExchangeDeclare, Vhost: vh, Name: name, Body: json.RawMessage(body)})
	}
	return out, nil
}

func (a *fakeApplier) RestoreMeta(cmds []Command) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.restores++
	a.exchanges = map[string]string{}
	for _, c := range cmds {
		a.exchanges[c.Vhost+"/"+c.Name] = string(c.Body)
	}
	return nil
}

func (a *fakeApplier) MarshalError(err error) json.RawMessage {
	b, _ := json.Marshal(err.Error())
	return b
}

func (a *fakeApplier) UnmarshalError(raw json.RawMessage) error {
	var s string
	_ = json.Unmarshal(raw, &s)
	return errors.New(s)
}

func (a *fakeApplier) names() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for k := range a.exchanges {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (a *fakeApplier) counts() (applied, restores int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.applied, a.restores
}

// startThree starts three nodes with models and waits for a leader.
func startThree(t *testing.T, tune func(*testNode)) ([]*testNode, func(string) configs.Cluster) {
	t.Helper()
	names := []string{"n1", "n2", "n3"}
	var peers []configs.Peer
	nodes := make([]*testNode, 3)
	for i, name := range names {
		peers = append(peers, configs.Peer{Name: name, Addr: freeAddr(t)})
		nodes[i] = &testNode{dir: t.TempDir(), app: newFakeApplier()}
		if tune != nil {
			tune(nodes[i])
		}
	}
	cfg := func(name string) configs.Cluster { return configs.Cluster{NodeName: name, Peers: peers} }
	for i, tn := range nodes {
		tn.start(t, cfg(names[i]))
	}
	t.Cleanup(func() {
		for _, tn := range nodes {
			if tn.n != nil {
				tn.stop(t)
			}
		}
	})
	agreedLeader(t, nodes)
	return nodes, cfg
}

func byRole(nodes []*testNode, leader string) (lead *testNode, followers []*testNode) {
	for _, tn := range nodes {
		if tn.n == nil {
			continue
		}
		if tn.n.Name() == leader {
			lead = tn
		} else {
			followers = append(followers, tn)
		}
	}
	return lead, followers
}

// waitNames waits until every running node's model has exactly want.
func waitNames(t *testing.T, nodes []*testNode, want ...string) {
	t.Helper()
	sort.Strings(want)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok := true
		for _, tn := range nodes {
			if tn.n != nil && strings.Join(tn.app.names(), ",") != strings.Join(want, ",") {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			for _, tn := range nodes {
				if tn.n != nil {
					t.Logf("%s has %v", tn.n.Name(), tn.app.names())
				}
			}
			t.Fatalf("the nodes' models did not all become %v within 30s", want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func propose(t *testing.T, n *Node, c Command) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return n.Propose(ctx, c)
}

// TestProposeOnFollowerAppliesEverywhere: a command proposed on a follower is in that
// follower's model when Propose returns (it waited for its own FSM), then in every node's; a
// delete goes the same way; the model's refusal on the leader comes back to the follower's
// caller with its text.
func TestProposeOnFollowerAppliesEverywhere(t *testing.T) {
	nodes, _ := startThree(t, nil)
	_, followers := byRole(nodes, agreedLeader(t, nodes))
	f := followers[0]
	if err := propose(t, f.n, Command{Op: OpExchangeDeclare, Vhost: "/", Name: "x1", Body: json.RawMessage(`{"kind":"topic"}`)}); err != nil {
		t.Fatal(err)
	}
	if got := f.app.names(); len(got) != 1 || got[0] != "//x1" {
		t.Fatalf("the proposing follower's model right after Propose: %v", got)
	}
	waitNames(t, nodes, "//x1")
	if err := propose(t, followers[1].n, Command{Op: OpExchangeDelete, Vhost: "/", Name: "x1"}); err != nil {
		t.Fatal(err)
	}
	waitNames(t, nodes)
	err := propose(t, f.n, Command{Op: "fail", Name: "bad"})
	if err == nil || err.Error() != "refused bad" {
		t.Fatalf("a refused command on a follower: %v, want the model's error", err)
	}
}

// TestProposeAfterLeaderLoss: with the leader stopped, the other two elect a new one and a
// proposal from either still applies on both; without a majority a proposal fails with
// ErrNoLeader by its deadline instead of hanging.
func TestProposeAfterLeaderLoss(t *testing.T) {
	nodes, _ := startThree(t, nil)
	lead, followers := byRole(nodes, agreedLeader(t, nodes))
	if err := propose(t, followers[0].n, Command{Op: OpExchangeDeclare, Vhost: "/", Name: "before"}); err != nil {
		t.Fatal(err)
	}
	lead.stop(t)
	for _, tn := range followers {
		if err := propose(t, tn.n, Command{Op: OpExchangeDeclare, Vhost: "/", Name: "after-" + tn.n.Name()}); err != nil {
			t.Fatalf("proposal on %s after the leader stopped: %v", tn.n.Name(), err)
		}
	}
	waitNames(t, nodes, "//before", "//after-"+followers[0].n.Name(), "//after-"+followers[1].n.Name())

	followers[1].stop(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err := followers[0].n.Propose(ctx, Command{Op: OpExchangeDeclare, Vhost: "/", Name: "alone"})
	if !errors.Is(err, ErrNoLeader) {
		t.Fatalf("a proposal on a lone node: %v, want ErrNoLeader", err)
	}
}

// TestRestartedNodeCatchesUpFromSnapshot: a node that was down while the others made many
// changes, and the snapshot policy (threshold, interval) compacted their logs, catches up
// from the leader's snapshot (its model is restored, deletes included); a node restarted on its own data does not apply again what it
// had applied.
func TestRestartedNodeCatchesUpFromSnapshot(t *testing.T) {
	nodes, cfg := startThree(t, func(tn *testNode) {
		tn.snapshotThreshold, tn.trailingLogs, tn.snapshotInterval = 8, 4, 100*time.Millisecond
	})
	leader := agreedLeader(t, nodes)
	lead, followers := byRole(nodes, leader)
	if err := propose(t, lead.n, Command{Op: OpExchangeDeclare, Vhost: "/", Name: "gone"}); err != nil {
		t.Fatal(err)
	}
	waitNames(t, nodes, "//gone")
	down := followers[1]
	downName, downAt := down.n.Name(), down.n.Status().AppliedIndex
	down.stop(t)
	var want []string
	for i := range 40 {
		name := fmt.Sprintf("x%02d", i)
		if err := propose(t, followers[0].n, Command{Op: OpExchangeDeclare, Vhost: "/", Name: name}); err != nil {
			t.Fatal(err)
		}
		want = append(want, "//"+name)
	}
	if err := propose(t, lead.n, Command{Op: OpExchangeDelete, Vhost: "/", Name: "gone"}); err != nil {
		t.Fatal(err)
	}
	// The snapshot policy compacts the leader's log past what the stopped node has.
	deadline := time.Now().Add(30 * time.Second)
	for lead.n.Status().SnapshotIndex <= downAt+8 {
		if time.Now().After(deadline) {
			t.Fatalf("no snapshot past index %d within 30s: %+v", downAt+8, lead.n.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
	down.start(t, cfg(downName))
	waitNames(t, nodes, want...)
	if _, restores := down.app.counts(); restores == 0 {
		t.Fatal("the node caught up without the leader's snapshot: the log was not compacted")
	}

	// A restart on the node's own data: nothing already applied is applied again.
	other := followers[0]
	before, _ := other.app.counts()
	otherName := other.n.Name()
	other.stop(t)
	other.start(t, cfg(otherName))
	if err := propose(t, other.n, Command{Op: OpExchangeDeclare, Vhost: "/", Name: "last"}); err != nil {
		t.Fatal(err)
	}
	waitNames(t, nodes, append(want, "//last")...)
	if after, _ := other.app.counts(); after != before+1 {
		t.Fatalf("the restarted node applied %d commands for 1 new one (replayed what it had)", after-before)
	}
}

// TestProposalsRideOutLeaderChange: a follower proposing without pause while the leader stops
// sees every proposal succeed (those caught in flight are retried on the new leader), and
// every one of them is in both remaining nodes' models.
func TestProposalsRideOutLeaderChange(t *testing.T) {
	nodes, _ := startThree(t, nil)
	lead, followers := byRole(nodes, agreedLeader(t, nodes))
	const total = 60
	started := make(chan struct{})
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		for i := range total {
			if i == 10 {
				close(started)
			}
			if err := propose(t, followers[0].n, Command{Op: OpExchangeDeclare, Vhost: "/", Name: fmt.Sprintf("x%02d", i)}); err != nil {
				errs <- fmt.Errorf("proposal %d: %w", i, err)
				return
			}
		}
	}()
	select {
	case <-started:
	case err := <-errs:
		t.Fatalf("before the leader stopped: %v", err)
	}
	lead.stop(t)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range total {
		want = append(want, fmt.Sprintf("//x%02d", i))
	}
	waitNames(t, nodes, want...)
}

// TestFirstQueueRecordStays: two declarations of one queue, each naming its own node as the
// owner (two clients on two nodes at once), leave every node with the first record.
func TestFirstQueueRecordStays(t *testing.T) {
	nodes, _ := startThree(t, nil)
	_, followers := byRole(nodes, agreedLeader(t, nodes))
	for _, tn := range followers {
		rec := &QueueRecord{Vhost: "/", Name: "q", Type: QueueClassic, Owner: tn.n.Name()}
		if err := propose(t, tn.n, Command{Op: OpQueueDeclare, Vhost: "/", Name: "q", Queue: rec}); err != nil {
			t.Fatal(err)
		}
	}
	first := followers[0].n.Name()
	deadline := time.Now().Add(30 * time.Second)
	for _, tn := range nodes {
		for {
			r, ok := tn.n.QueueRecord("/", "q")
			if ok && r.Owner == first {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: record %+v (%v), want owner %s", tn.n.Name(), r, ok, first)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
