package main

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestClusterThroughProxies covers the cluster mode as far as the cluster goes today (no
// queue is replicated yet): three real nodes whose cluster traffic goes through the harness's
// proxies form one cluster; cutting the leader off while it keeps running makes the other two
// elect a leader among themselves; after heal the three agree again; the nemesis's kill -9
// and pause of the leader are undone and the cluster settles after each, no node exiting on
// its own.
func TestClusterThroughProxies(t *testing.T) {
	warren, _ := buildTools(t)
	ctx := context.Background()
	ns, err := newNodes(warren, t.TempDir(), 3, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.stopAll)
	for _, n := range ns.list {
		if err := ns.start(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := ns.settle(ctx, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	cut := ns.leader("no-such-queue")
	if cut == nil {
		t.Fatal("no leader after the cluster settled")
	}

	ns.net.partition(cut.name)
	waitFor(t, "the two other nodes to elect a leader without "+cut.name, func() bool {
		leader := ""
		for _, n := range ns.list {
			if n == cut {
				continue
			}
			var v clusterView
			if ns.getJSON(n, "/api/warren/cluster", &v) != nil || v.Leader == "" || v.Leader == cut.name || (leader != "" && v.Leader != leader) {
				return false
			}
			leader = v.Leader
		}
		return true
	})
	if ns.net.refusedCount() == 0 {
		t.Error("the partition refused no connection")
	}
	ns.net.heal()
	if err := ns.settle(ctx, 60*time.Second); err != nil {
		t.Fatalf("after heal: %v", err)
	}

	m := &nemesis{ns: ns, rng: newRand(1), queue: "no-such-queue", holdMin: 500 * time.Millisecond, holdMax: time.Second,
		leaderBias: 1, start: time.Now(), log: zerolog.Nop()}
	for _, kind := range []string{faultKill, faultPause} {
		f, err := m.inject(ctx, kind)
		if err != nil || !f.Leader {
			t.Fatalf("%s: %+v, %v; want the leader hit and the fault undone", kind, f, err)
		}
		if err := ns.settle(ctx, 60*time.Second); err != nil {
			t.Fatalf("after %s of %s: %v", kind, f.Node, err)
		}
	}
	if c := ns.crashList(); len(c) > 0 {
		t.Fatalf("nodes exited on their own: %v", c)
	}
}
