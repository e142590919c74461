package server_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/warrenmq/warren/server/servertest"
)

// BenchmarkClusterDeclare: queue.declare of new durable queues on a three-node in-process
// cluster, by a client of the metadata leader and by a client of a follower (its declaration
// is forwarded to the leader, and declare-ok waits until the follower applied it).
// docs/performance.md, "Declaring in a cluster".
func BenchmarkClusterDeclare(b *testing.B) {
	nodes := servertest.Cluster(b, "n1", "n2", "n3")
	var leader string
	for deadline := time.Now().Add(45 * time.Second); leader == ""; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("no metadata leader")
		}
		leader = nodes[0].Node.Status().Leader
	}
	for _, role := range []string{"leader", "follower"} {
		var via *servertest.ClusterMember
		for _, n := range nodes {
			if (n.Name == leader) == (role == "leader") {
				via = n
			}
		}
		b.Run(role, func(b *testing.B) {
			ch := servertest.Channel(b, via.Addr)
			i := 0
			for b.Loop() {
				i++
				if _, err := ch.QueueDeclare(fmt.Sprintf("%s-%d-%d", role, b.N, i), true, false, false, false, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
