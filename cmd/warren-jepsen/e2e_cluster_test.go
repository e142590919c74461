package main

import (
	"strings"
	"testing"
)

// TestClusterUnderFaults is the CI run of issue 18 (docs/cluster.md, "Fault testing"): three
// real nodes dialing each other through the
// harness's proxies, a quorum queue, three publishers with confirms on n1, n2, n3 and three
// consumers with manual acks each on another node than its publisher, and 12 faults drawn
// from kill -9 and restart (the leader more often than not), SIGSTOP/SIGCONT, a partition
// that cuts a running node off and a member change (the node taken out of the queue's
// members through the management API, then added back). After the heal and a drain: every confirmed message was
// delivered, nothing unpublished was, no node exited on its own, and the three nodes report
// the same queues, the queue empty and the same three members, of the cluster and of the queue.
func TestClusterUnderFaults(t *testing.T) {
	warren, jepsen := buildTools(t)
	code, summary, rep := runJepsen(t, jepsen, "--warren", warren, "--nodes", "3", "--faults", "12", "--seed", "18",
		"--publishers", "3", "--consumers", "3", "--rate", "30", "--consume-rate", "15",
		"--hold-min", "1s", "--hold-max", "3s", "--gap-min", "500ms", "--gap-max", "1s")
	if code != 0 || !rep.OK || !strings.Contains(summary, "result: PASS") {
		t.Fatalf("the run failed (exit %d): %d lost %v, phantoms %v, crashes %v, disagreements %v, problems %v",
			code, len(rep.Result.Lost), sampleOf(rep.Result.Lost), rep.Result.Phantoms, rep.Crashes, rep.Disagreements, rep.Problems)
	}
	for _, k := range []string{faultKill, faultPause, faultPartition, faultMember} {
		if rep.FaultsByKind[k] == 0 {
			t.Errorf("no %s among the faults %v", k, rep.FaultsByKind)
		}
	}
	if len(rep.Faults) != 12 || rep.Refused == 0 {
		t.Fatalf("%d faults, %d connections refused by partitions: want 12, and partitions that cut something", len(rep.Faults), rep.Refused)
	}
	if r := rep.Result; r.Confirmed == 0 || r.Delivered < r.Confirmed {
		t.Fatalf("result = %+v: nothing confirmed, or fewer distinct deliveries than confirms", r)
	}
	for _, name := range []string{"n1", "n2", "n3"} {
		if st := rep.States[name]; len(st.Members) != 3 || len(st.QueueMembers) != 3 || st.Messages != 0 {
			t.Errorf("%s's final state = %+v, want 3 members, the queue on all three and empty", name, st)
		}
	}
}

func sampleOf(ids []string) []string {
	if len(ids) > 5 {
		return ids[:5]
	}
	return ids
}
