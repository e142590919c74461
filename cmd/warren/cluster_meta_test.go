package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// api sends one management request to n as guest and returns the status and body.
func (n *clusterNode) api(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+n.apiAddr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("guest", "guest")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitAPI waits until GET path on n answers 200 with a body containing want.
func (n *clusterNode) waitAPI(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, body := n.api(t, "GET", path, "")
		if status == 200 && strings.Contains(body, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: GET %s = %d %s, want 200 with %q", n.name, path, status, body, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// dial opens an AMQP connection to n as user.
func (n *clusterNode) dial(t *testing.T, user, password string) (*amqp.Connection, *amqp.Channel) {
	t.Helper()
	conn, err := amqp.Dial("amqp://" + user + ":" + password + "@" + n.amqp + "/")
	if err != nil {
		t.Fatalf("%s: dial as %s: %v", n.name, user, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return conn, ch
}

// seesTopology checks, through n's management API and a passive declare over AMQP, that n
// has the exchange, the queue, the binding and the user made on the other nodes.
func (n *clusterNode) seesTopology(t *testing.T, exchanges ...string) {
	t.Helper()
	for _, x := range exchanges {
		n.waitAPI(t, "/api/exchanges/%2F/"+x, `"name":"`+x+`"`)
	}
	n.waitAPI(t, "/api/queues/%2F/orders-q", `"durable":true`)
	n.waitAPI(t, "/api/bindings/%2F/e/orders/q/orders-q", `"routing_key":"order.#"`)
	n.waitAPI(t, "/api/users/alice", `"name":"alice"`)
	_, ch := n.dial(t, "alice", "s3cret") // the user's password hash came with it
	if _, err := ch.QueueDeclarePassive("orders-q", true, false, false, false, nil); err != nil {
		t.Fatalf("%s: passive declare of the replicated queue: %v", n.name, err)
	}
	for _, x := range exchanges {
		if err := ch.ExchangeDeclarePassive(x, "topic", true, false, false, false, nil); err != nil {
			t.Fatalf("%s: passive declare of exchange %s: %v", n.name, x, err)
		}
	}
}

// TestClusterReplicatesMetadata: on three real brokers, an exchange, a durable queue and a
// binding declared with amqp091-go on node 2 and a user made through node 3's management API
// are on node 1 (its API lists them, a passive declare finds them, the user logs in there);
// the queue is node 2's, and consuming from it on node 1 works (forwarded to node 2).
// After kill -9 of the leader the survivors still take declarations, and the killed node,
// restarted on its data, has everything, including what was declared while it was down.
func TestClusterReplicatesMetadata(t *testing.T) {
	nodes, start := procCluster(t, "n1", "n2", "n3")
	agree(t, nodes)

	_, ch2 := nodes[1].dial(t, "guest", "guest")
	if err := ch2.ExchangeDeclare("orders", "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch2.QueueDeclare("orders-q", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch2.QueueBind("orders-q", "order.#", "orders", false, nil); err != nil {
		t.Fatal(err)
	}
	for _, req := range []struct{ path, body string }{
		{"/api/users/alice", `{"password":"s3cret","tags":"management"}`},
		{"/api/permissions/%2F/alice", `{"configure":".*","write":".*","read":".*"}`},
	} {
		if status, body := nodes[2].api(t, "PUT", req.path, req.body); status != 201 && status != 204 {
			t.Fatalf("n3: PUT %s = %d %s", req.path, status, body)
		}
	}
	nodes[0].seesTopology(t, "orders")
	nodes[0].waitAPI(t, "/api/queues/%2F/orders-q", `"node":"n2"`) // the node that holds it

	_, ch1 := nodes[0].dial(t, "guest", "guest")
	if _, err := ch1.Consume("orders-q", "", false, false, false, false, nil); err != nil {
		st, body := nodes[0].api(t, "GET", "/api/queues/%2F/orders-q", "")
		t.Fatalf("consume on n1 from n2's queue (forwarded to n2): %v (%d %s)", err, st, body)
	}

	leader := agree(t, nodes)
	var killed int
	var survivors []*clusterNode
	for i, n := range nodes {
		if n.name == leader {
			killed = i
			if err := n.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = n.cmd.Wait()
		} else {
			survivors = append(survivors, n)
		}
	}
	agree(t, survivors)
	_, chs := survivors[0].dial(t, "guest", "guest")
	if err := chs.ExchangeDeclare("after-kill", "topic", true, false, false, false, nil); err != nil {
		t.Fatalf("declaring on %s after the leader was killed: %v", survivors[0].name, err)
	}
	start(killed)
	agree(t, nodes)
	nodes[killed].seesTopology(t, "orders", "after-kill")
}
