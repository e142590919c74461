package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// clusterNode is one real broker process of a test cluster.
type clusterNode struct {
	name, apiAddr, amqp, dataDir string
	cmd                          *exec.Cmd
}

// procCluster starts real brokers named names as one cluster on loopback (the same
// --cluster-peers on each) and returns them with start, which (re)starts node i on its data
// dir; it waits for nothing (see agree). Each node's log is drained so that it never blocks.
func procCluster(t *testing.T, names ...string) (nodes []*clusterNode, start func(i int)) {
	t.Helper()
	var peers []string
	for _, name := range names {
		nodes = append(nodes, &clusterNode{name: name, apiAddr: freeAddr(t), dataDir: t.TempDir()})
		peers = append(peers, name+"@"+freeAddr(t))
	}
	start = func(i int) {
		n := nodes[i]
		cmd, amqpAddr, lines := startBroker(t, "--data-dir", n.dataDir, "--management-listen", n.apiAddr,
			"--node-name", n.name, "--cluster-listen", strings.SplitN(peers[i], "@", 2)[1],
			"--cluster-peers", strings.Join(peers, ","))
		n.cmd, n.amqp = cmd, amqpAddr
		go func() {
			for range lines {
			}
		}()
	}
	for i := range nodes {
		start(i)
	}
	return nodes, start
}

type clusterReport struct {
	Clustered bool   `json:"clustered"`
	Node      string `json:"node"`
	State     string `json:"state"`
	Leader    string `json:"leader"`
	Rejoined  bool   `json:"rejoined"`
	Members   []struct {
		Name string `json:"name"`
	} `json:"members"`
}

func (n *clusterNode) status(t *testing.T) (clusterReport, bool) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+n.apiAddr+"/api/warren/cluster", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("guest", "guest")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return clusterReport{}, false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var v clusterReport
	if resp.StatusCode != 200 || json.Unmarshal(body, &v) != nil {
		return clusterReport{}, false
	}
	return v, true
}

// agree waits until every node of running names the same leader, one of running.
func agree(t *testing.T, running []*clusterNode) string {
	t.Helper()
	names := map[string]bool{}
	for _, n := range running {
		names[n.name] = true
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		leader, ok := "", true
		for _, n := range running {
			v, got := n.status(t)
			if !got || v.Leader == "" || (leader != "" && v.Leader != leader) || len(v.Members) != 3 {
				ok = false
				break
			}
			leader = v.Leader
		}
		if ok && names[leader] {
			return leader
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the nodes did not agree on a leader among themselves within 20s")
	return ""
}

// TestClusterOfThreeProcesses: three real brokers started with the same --cluster-peers on
// loopback form one cluster (warren ctl cluster status lists the three, one leader; each
// node's /api/nodes lists the three, each with its own PID); when the leader is killed with
// SIGKILL the other two elect a new one and list it as not running; the killed node restarted
// on its data dir rejoins (it does not bootstrap a second cluster) and follows the new leader.
func TestClusterOfThreeProcesses(t *testing.T) {
	var nodes []*clusterNode
	var peers []string
	for _, name := range []string{"n1", "n2", "n3"} {
		n := &clusterNode{name: name, apiAddr: freeAddr(t), dataDir: t.TempDir()}
		peers = append(peers, name+"@"+freeAddr(t))
		nodes = append(nodes, n)
	}
	// start runs n and returns what its API says about its Raft state: whether it rejoined.
	// Its log lines are drained so that it never blocks on them.
	start := func(n *clusterNode, i int) (rejoined bool) {
		cmd, _, lines := startBroker(t, "--data-dir", n.dataDir, "--management-listen", n.apiAddr,
			"--node-name", n.name, "--cluster-listen", strings.SplitN(peers[i], "@", 2)[1],
			"--cluster-peers", strings.Join(peers, ","))
		n.cmd = cmd
		go func() {
			for range lines {
			}
		}()
		v, ok := n.status(t)
		if !ok || !v.Clustered {
			t.Fatalf("%s: /api/warren/cluster = %+v, %v", n.name, v, ok)
		}
		return v.Rejoined
	}
	for i, n := range nodes {
		if start(n, i) {
			t.Fatalf("%s says it rejoined on a fresh data dir", n.name)
		}
	}
	leader := agree(t, nodes)

	out, err := exec.Command(nodes[0].cmd.Path, "ctl", "--url", "http://"+nodes[0].apiAddr, "cluster", "status").CombinedOutput()
	if err != nil {
		t.Fatalf("warren ctl cluster status: %v\n%s", err, out)
	}
	rows := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(rows) != 3 || !strings.Contains(string(out), leader+"\t") || strings.Count(string(out), "\tleader") != 1 {
		t.Fatalf("warren ctl cluster status:\n%s", out)
	}

	// Each node lists every member in /api/nodes, each with its own figures: its own PID.
	listed := nodesListed(t, nodes[0])
	for _, n := range nodes {
		if v := listed[n.name]; v["running"] != true || v["os_pid"] != strconv.Itoa(n.cmd.Process.Pid) {
			t.Fatalf("GET /api/nodes on %s lists %s as %v, want it running with os_pid %d", nodes[0].name, n.name, v, n.cmd.Process.Pid)
		}
	}

	var survivors []*clusterNode
	var killed *clusterNode
	var killedAt int
	for i, n := range nodes {
		if n.name == leader {
			killed, killedAt = n, i
			if err := n.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = n.cmd.Wait()
		} else {
			survivors = append(survivors, n)
		}
	}
	next := agree(t, survivors)
	if next == leader {
		t.Fatalf("the killed leader %s is still leader", leader)
	}
	// A member that is down is listed, not running, as RabbitMQ lists a stopped node.
	if v := nodesListed(t, survivors[0])[killed.name]; v["running"] != false {
		t.Fatalf("GET /api/nodes on %s lists the killed %s as %v, want running false", survivors[0].name, killed.name, v)
	}
	out, err = exec.Command(nodes[0].cmd.Path, "ctl", "--url", "http://"+survivors[0].apiAddr, "list", "nodes", "name", "running").CombinedOutput()
	if err != nil || !strings.Contains(string(out), killed.name+"\tfalse") || !strings.Contains(string(out), survivors[1].name+"\ttrue") {
		t.Fatalf("warren ctl list nodes name running, with %s down: %v\n%s", killed.name, err, out)
	}
	if status, body := survivors[0].api(t, "GET", "/api/nodes/"+killed.name, ""); status != 200 || !strings.Contains(body, `"running":false`) {
		t.Fatalf("GET /api/nodes/%s on %s = %d %s", killed.name, survivors[0].name, status, body)
	}

	if !start(killed, killedAt) {
		t.Fatal("the restarted node bootstrapped again instead of rejoining")
	}
	if got := agree(t, nodes); got != next {
		t.Logf("leadership moved again after the rejoin: %s -> %s", next, got)
	}
	v, _ := killed.status(t)
	if v.State != "Follower" && v.State != "Leader" {
		t.Fatalf("the restarted node is %+v", v)
	}
}

// nodesListed is GET /api/nodes on n, by node name.
func nodesListed(t *testing.T, n *clusterNode) map[string]map[string]any {
	t.Helper()
	status, body := n.api(t, "GET", "/api/nodes", "")
	var list []map[string]any
	if status != 200 || json.Unmarshal([]byte(body), &list) != nil {
		t.Fatalf("GET /api/nodes on %s = %d %s", n.name, status, body)
	}
	byName := map[string]map[string]any{}
	for _, v := range list {
		name, _ := v["name"].(string)
		byName[name] = v
	}
	if len(byName) != len(list) {
		t.Fatalf("GET /api/nodes on %s lists a node twice: %s", n.name, body)
	}
	return byName
}
