package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/configs"
)

// The tests here run the real binary's `warren ctl` against the real binary's management API
// or, when AMQP_URL and MGMT_URL are set, against that broker (a RabbitMQ node), which proves
// the commands use RabbitMQ's API as it is:
//
//	AMQP_URL=amqp://guest:guest@127.0.0.1:5673/ MGMT_URL=http://127.0.0.1:15673 go test -run TestCtlBinary ./cmd/warren/

// ctlTarget is a broker for warren ctl and the binary that runs ctl.
type ctlTarget struct {
	bin     string
	amqpURL string
	apiURL  string
}

// startCtlTarget starts the real binary with its management API on a free port, or uses
// AMQP_URL and MGMT_URL when both are set (and builds the binary for ctl).
func startCtlTarget(t *testing.T) ctlTarget {
	t.Helper()
	if a, m := os.Getenv("AMQP_URL"), os.Getenv("MGMT_URL"); a != "" && m != "" {
		return ctlTarget{bin: buildBinary(t), amqpURL: a, apiURL: m}
	}
	api := freeAddr(t)
	cmd, addr, lines := startBroker(t, "--management-listen", api)
	go func() {
		for range lines {
		}
	}()
	return ctlTarget{bin: cmd.Path, amqpURL: "amqp://guest:guest@" + addr + "/", apiURL: "http://" + api}
}

// ctl runs `warren ctl --url URL args...` with stdout a pipe, not a terminal.
func (c ctlTarget) ctl(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(c.bin, append([]string{"ctl", "--url", c.apiURL}, args...)...)
	cmd.Env = append(os.Environ(), "WARREN_CTL_URL=", "WARREN_CTL_USER=", "WARREN_CTL_PASSWORD=")
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("warren ctl %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}

// ctlLines runs a listing that must succeed and returns its lines; ok false (with the error
// reported) when ctl failed.
func (c ctlTarget) ctlLines(t *testing.T, args ...string) ([]string, bool) {
	t.Helper()
	out, errOut, code := c.ctl(t, args...)
	if code != 0 {
		t.Errorf("warren ctl %s: exit %d: %s%s", strings.Join(args, " "), code, errOut, ctlPendingHint(errOut))
		return nil, false
	}
	return strings.Split(strings.TrimSuffix(out, "\n"), "\n"), true
}

// ctlPendingHint explains a 404 from the management API: the endpoint is not on this branch.
func ctlPendingHint(errOut string) string {
	if strings.Contains(errOut, "404 Not Found: Not Found") || strings.Contains(errOut, "405 Method Not Allowed") {
		return "(the broker's management API has no such endpoint: it comes with another part of issue 16)"
	}
	return ""
}

// waitForLines polls the listing args until want(lines) holds: RabbitMQ lists a new object
// or count only once its statistics are emitted (every 5 s).
func (c ctlTarget) waitForLines(t *testing.T, what string, want func([]string) bool, args ...string) bool {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		lines, ok := c.ctlLines(t, args...)
		if !ok {
			return false
		}
		if want(lines) {
			return true
		}
		if time.Now().After(deadline) {
			t.Errorf("warren ctl %s: no %s within 20s; last output:\n%s", strings.Join(args, " "), what, strings.Join(lines, "\n"))
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func ctlHasLine(want string) func([]string) bool {
	return func(lines []string) bool {
		for _, l := range lines {
			if l == want {
				return true
			}
		}
		return false
	}
}

// ctlLineWith holds when a line starts with prefix and ends with suffix.
func ctlLineWith(prefix, suffix string) func([]string) bool {
	return func(lines []string) bool {
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) && strings.HasSuffix(l, suffix) {
				return true
			}
		}
		return false
	}
}

// ctlUniqueName is a name no other run uses (the reference RabbitMQ is shared).
func ctlUniqueName(prefix string) string {
	return fmt.Sprintf("%s-%08x", prefix, rand.Uint32())
}

// ctlPublish sends n persistent messages to queue q through the default exchange and waits for
// their confirms.
func ctlPublish(t *testing.T, ch *amqp.Channel, q string, n int) {
	t.Helper()
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), "", q, false, false,
			amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(fmt.Sprintf("m%d", i))})
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := dc.WaitContext(context.Background()); !ok || err != nil {
			t.Fatalf("publish %d: confirmed %v, %v", i, ok, err)
		}
	}
}

// TestCtlBinaryListsQueuesAndClosesConnection: over the real binary, `warren ctl list queues
// name messages` prints each queue and its message count tab-separated without a header (stdout
// is not a terminal), --format json gives the chosen columns, `list connections` shows the
// client's connection by its name and user, `close connection NAME REASON` closes it with 320
// CONNECTION_FORCED - REASON at the client, and a wrong password exits 1 naming the user.
func TestCtlBinaryListsQueuesAndClosesConnection(t *testing.T) {
	target := startCtlTarget(t)
	conn, err := amqp.Dial(target.amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	full, empty := ctlUniqueName("ctl-full"), ctlUniqueName("ctl-empty")
	for _, q := range []string{full, empty} {
		if _, err := ch.QueueDeclare(q, false, true, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	ctlPublish(t, ch, full, 3)

	target.waitForLines(t, full+"\t3 and "+empty+"\t0", func(l []string) bool { return ctlHasLine(full+"\t3")(l) && ctlHasLine(empty+"\t0")(l) },
		"list", "queues", "name", "messages")
	if lines, ok := target.ctlLines(t, "list", "queues"); ok && !ctlHasLine(full+"\t3")(lines) {
		t.Errorf("list queues (default columns name, messages):\n%s", strings.Join(lines, "\n"))
	}

	// RabbitMQ emits a queue's consumer count apart from its message count: poll for both.
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, errOut, code := target.ctl(t, "--format", "json", "list", "queues", "name", "messages", "consumers", "-p", "/")
		var rows []struct {
			Name      string `json:"name"`
			Messages  *int   `json:"messages"`
			Consumers *int   `json:"consumers"`
		}
		if err := json.Unmarshal([]byte(out), &rows); code != 0 || err != nil {
			t.Fatalf("--format json list queues: exit %d, %v: %s%s", code, err, out, errOut)
		}
		found := false
		for _, r := range rows {
			if r.Name == full {
				found = r.Messages != nil && *r.Messages == 3 && r.Consumers != nil && *r.Consumers == 0
			}
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("--format json: no {name: %s, messages: 3, consumers: 0} within 20s in\n%s", full, out)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}

	connName := conn.LocalAddr().String() + " -> " + conn.RemoteAddr().String() // RabbitMQ's connection name
	target.waitForLines(t, "the client's connection", ctlHasLine(connName+"\tguest"), "list", "connections", "name", "user")

	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	if out, errOut, code := target.ctl(t, "close", "connection", connName, "closed by warren ctl"); code != 0 {
		t.Fatalf("close connection: exit %d: %s%s", code, out, errOut)
	}
	select {
	case e := <-closed:
		if e == nil || e.Code != 320 || e.Reason != "CONNECTION_FORCED - closed by warren ctl" {
			t.Errorf("the client saw %+v, want 320 CONNECTION_FORCED - closed by warren ctl", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client saw no connection.close within 10s")
	}
	// The API answers once the close has begun (RabbitMQ lists the connection a little longer).
	target.waitForLines(t, "the connection gone", func(l []string) bool { return !ctlHasLine(connName)(l) }, "list", "connections", "name")
	if _, errOut, code := target.ctl(t, "close", "connection", connName); code != 1 || !strings.Contains(errOut, "404") {
		t.Errorf("closing it again: exit %d, %q; want 1 and the API's 404", code, errOut)
	}

	_, errOut, code := target.ctl(t, "--password", "wrong", "list", "queues")
	if code != 1 || !strings.Contains(errOut, `user "guest" refused by `+target.apiURL+"/api/queues") || !strings.Contains(errOut, "401 Unauthorized") {
		t.Errorf("wrong password: exit %d, %q; want 1, the user, the URL and 401", code, errOut)
	}
	if _, errOut, code := target.ctl(t, "list", "queues", "name", "mesages"); code != 2 || !strings.Contains(errOut, `unknown column "mesages"`) {
		t.Errorf("unknown column: exit %d, %q; want 2", code, errOut)
	}
	ctlCleanupQueues(t, target, full, empty)
}

// ctlCleanupQueues deletes queues over AMQP (the reference RabbitMQ outlives the test).
func ctlCleanupQueues(t *testing.T, target ctlTarget, names ...string) {
	conn, err := amqp.Dial(target.amqpURL)
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer conn.Close()
	for _, q := range names {
		ch, err := conn.Channel()
		if err != nil {
			return
		}
		_, _ = ch.QueueDelete(q, false, false, false)
		_ = ch.Close()
	}
}

// TestCtlBinaryEveryCommand drives every other command over the real binary: the listings
// of exchanges, bindings, channels, consumers, users, vhosts, policies and permissions show
// the objects a client and an import made; purge empties a queue; definitions export writes
// a file that, imported after the queue was deleted, brings it back; delete removes a queue,
// an exchange, a policy, a user and a vhost; status shows the node, uptime, alarms and totals.
// On Warren most of these need endpoints other parts of issue 16 add: until then each step
// fails with the API's 404.
func TestCtlBinaryEveryCommand(t *testing.T) {
	target := startCtlTarget(t)
	conn, err := amqp.Dial(target.amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	x, q, cq := ctlUniqueName("ctl-x"), ctlUniqueName("ctl-q"), ctlUniqueName("ctl-c")
	if err := ch.ExchangeDeclare(x, "direct", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{q, cq} {
		if _, err := ch.QueueDeclare(name, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	defer ctlCleanupQueues(t, target, q, cq)
	if err := ch.QueueBind(q, "k", x, false, nil); err != nil {
		t.Fatal(err)
	}
	ctlPublish(t, ch, q, 2)
	cch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cch.Consume(cq, "ctl-tag", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	connName := conn.LocalAddr().String() + " -> " + conn.RemoteAddr().String()

	// An import makes a user, a vhost and a policy for the deletes below.
	user, vh, pol := ctlUniqueName("ctl-user"), ctlUniqueName("ctl-vhost"), ctlUniqueName("ctl-policy")
	hash, err := configs.HashPassword("ctl-secret", "")
	if err != nil {
		t.Fatal(err)
	}
	seed := fmt.Sprintf(`{"users":[{"name":%q,"password_hash":%q,"hashing_algorithm":"rabbit_password_hashing_sha256","tags":"management"}],
		"vhosts":[{"name":%q}],
		"policies":[{"vhost":"/","name":%q,"pattern":"^ctl-none$","apply-to":"queues","definition":{"max-length":10},"priority":0}]}`, user, hash, vh, pol)
	seedFile := filepath.Join(t.TempDir(), "seed.json")
	if err := os.WriteFile(seedFile, []byte(seed), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := target.ctl(t, "definitions", "import", seedFile)
	imported := code == 0 && strings.Contains(out, "Imported definitions from")
	if !imported {
		t.Errorf("definitions import: exit %d, %q %s%s", code, out, errOut, ctlPendingHint(errOut))
	}
	// waitImported waits for an imported object, or (the import failed) checks the listing works.
	waitImported := func(what string, want func([]string) bool, args ...string) {
		if imported {
			target.waitForLines(t, what, want, args...)
		} else {
			target.ctlLines(t, args...)
		}
	}

	target.waitForLines(t, "the exchange", ctlHasLine(x+"\tdirect"), "list", "exchanges")
	target.waitForLines(t, "the binding", ctlHasLine(x+"\t"+q+"\tqueue\tk\t{}"), "list", "bindings")
	target.waitForLines(t, "the consumer", ctlHasLine(cq+"\tctl-tag\tfalse"), "list", "consumers", "queue.name", "consumer_tag", "exclusive")
	target.waitForLines(t, "the consumer's channel", func(lines []string) bool {
		for _, l := range lines {
			if strings.HasPrefix(l, connName+" (") && strings.HasSuffix(l, "\tguest\t1") {
				return true
			}
		}
		return false
	}, "list", "channels", "name", "user", "consumer_count")
	waitImported("the imported user", ctlHasLine(user+"\tmanagement"), "list", "users")
	waitImported("the imported vhost", ctlHasLine(vh), "list", "vhosts")
	// Patterns are not compared: Warren's are globs, and it translates an imported regex.
	waitImported("the imported policy", ctlLineWith("/\t"+pol+"\t", "\tqueues\t{\"max-length\":10}\t0"), "list", "policies")
	target.waitForLines(t, "guest's permissions on /", ctlLineWith("guest\t/\t", ""), "list", "permissions", "-p", "/")

	target.waitForLines(t, q+"\t2", ctlHasLine(q+"\t2"), "list", "queues")
	if out, errOut, code := target.ctl(t, "purge", "queue", q); code != 0 {
		t.Errorf("purge queue: exit %d, %q %s%s", code, out, errOut, ctlPendingHint(errOut))
	} else {
		target.waitForLines(t, q+"\t0 after the purge", ctlHasLine(q+"\t0"), "list", "queues")
	}

	exported := filepath.Join(t.TempDir(), "defs.json")
	if out, errOut, code := target.ctl(t, "definitions", "export", exported); code != 0 {
		t.Errorf("definitions export: exit %d, %q %s%s", code, out, errOut, ctlPendingHint(errOut))
	} else if b, err := os.ReadFile(exported); err != nil || !json.Valid(b) || !strings.Contains(string(b), `"`+q+`"`) {
		t.Errorf("the exported file (%v) is not JSON naming queue %s:\n%.500s", err, q, b)
	}
	if out, errOut, code := target.ctl(t, "delete", "queue", q); code != 0 {
		t.Errorf("delete queue: exit %d, %q %s%s", code, out, errOut, ctlPendingHint(errOut))
	} else {
		target.waitForLines(t, "the queue gone", func(l []string) bool { return !ctlHasLine(q)(l) }, "list", "queues", "name")
		if out, errOut, code := target.ctl(t, "definitions", "import", exported); code != 0 {
			t.Errorf("definitions import of the export: exit %d, %q %s%s", code, out, errOut, ctlPendingHint(errOut))
		} else {
			target.waitForLines(t, "the queue back from the export", ctlHasLine(q), "list", "queues", "name")
		}
	}

	for _, d := range [][]string{{"exchange", x}, {"policy", pol}, {"user", user}, {"vhost", vh}} {
		if out, errOut, code := target.ctl(t, "delete", d[0], d[1]); code != 0 || !strings.Contains(out, "Deleted "+d[0]) {
			t.Errorf("delete %s %s: exit %d, %q %s%s", d[0], d[1], code, out, errOut, ctlPendingHint(errOut))
		}
	}
	target.waitForLines(t, "the exchange gone", func(l []string) bool { return !ctlHasLine(x + "\tdirect")(l) }, "list", "exchanges")
	if _, errOut, code := target.ctl(t, "delete", "user", user); code != 1 || !strings.Contains(errOut, "404") {
		t.Errorf("deleting the user again: exit %d, %q; want 1 and the API's 404", code, errOut)
	}

	out, errOut, code = target.ctl(t, "status")
	for _, want := range []string{"node\t", "product\t", "uptime\t", "alarms\tnone\n", "connections\t", "queues\t", "messages\t"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("status: exit %d, no %q line:\n%s%s%s", code, want, out, errOut, ctlPendingHint(errOut))
			break
		}
	}
}
