package main

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestClusterJoinAndLeave: a fourth broker started with a node name outside --cluster-peers
// and --cluster-advertise does not bootstrap a cluster of its own; `warren ctl cluster join`
// asked of a follower adds the node (the follower hands the change to the leader), which then
// follows that leader with the four members; `warren ctl cluster leave` takes it out again,
// and a second leave is refused as "no such member".
func TestClusterJoinAndLeave(t *testing.T) {
	var nodes []*clusterNode
	var peers, addrs []string
	for _, name := range []string{"n1", "n2", "n3"} {
		addr := freeAddr(t)
		nodes = append(nodes, &clusterNode{name: name, apiAddr: freeAddr(t), dataDir: t.TempDir()})
		peers, addrs = append(peers, name+"@"+addr), append(addrs, addr)
	}
	run := func(n *clusterNode, args ...string) {
		cmd, _, lines := startBroker(t, append([]string{"--data-dir", n.dataDir, "--management-listen", n.apiAddr,
			"--node-name", n.name, "--cluster-peers", strings.Join(peers, ",")}, args...)...)
		n.cmd = cmd
		go func() {
			for range lines {
			}
		}()
	}
	for i, n := range nodes {
		run(n, "--cluster-listen", addrs[i])
	}
	n4addr := freeAddr(t)
	n4 := &clusterNode{name: "n4", apiAddr: freeAddr(t), dataDir: t.TempDir()}
	run(n4, "--cluster-listen", n4addr, "--cluster-advertise", n4addr)

	// waitFor polls n's status until ok says it is what the test waits for.
	waitFor := func(n *clusterNode, what string, ok func(clusterReport) bool) clusterReport {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		var v clusterReport
		for time.Now().Before(deadline) {
			var got bool
			if v, got = n.status(t); got && ok(v) {
				return v
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("%s: %s: not within 30s; last status %+v", n.name, what, v)
		return v
	}
	v := waitFor(nodes[0], "a leader among three members", func(v clusterReport) bool { return v.Leader != "" && len(v.Members) == 3 })
	var leader, follower *clusterNode
	for _, n := range nodes {
		if n.name == v.Leader {
			leader = n
		} else {
			follower = n
		}
	}
	if leader == nil {
		t.Fatalf("leader %q is not one of the three", v.Leader)
	}
	if v4, ok := n4.status(t); !ok || !v4.Clustered || v4.Leader != "" || len(v4.Members) != 0 {
		t.Fatalf("the joining node before it is added: %+v, %v (want no leader and no members: it must not bootstrap)", v4, ok)
	}

	ctl := func(n *clusterNode, args ...string) (string, error) {
		out, err := exec.Command(n.cmd.Path, append([]string{"ctl", "--url", "http://" + n.apiAddr}, args...)...).CombinedOutput()
		return string(out), err
	}
	// Asked of a follower, the change goes to the leader.
	if out, err := ctl(follower, "cluster", "join", "n4@"+n4addr); err != nil {
		t.Fatalf("warren ctl cluster join through follower %s: %v\n%s", follower.name, err, out)
	}
	waitFor(n4, "following "+leader.name+" with four members", func(v clusterReport) bool {
		return v.Leader == leader.name && len(v.Members) == 4 && v.State == "Follower"
	})

	if out, err := ctl(follower, "cluster", "leave", "n4"); err != nil {
		t.Fatalf("warren ctl cluster leave: %v\n%s", err, out)
	}
	waitFor(leader, "three members again", func(v clusterReport) bool { return len(v.Members) == 3 })
	if out, err := ctl(leader, "cluster", "leave", "n4"); err == nil || !strings.Contains(out, "no such member") {
		t.Fatalf("leave of a node that is not a member: %v\n%s", err, out)
	}
}
