//go:build interop

package conformance

// The rabbitmqadmin tests drive RabbitMQ's own management CLI (the Python script Debian ships
// with rabbitmq-server; scripts/test extracts it without installing the server) against the
// broker's management API, as operators do.

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// rabbitmqadminPath is RABBITMQADMIN, else rabbitmqadmin on the PATH.
func rabbitmqadminPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("RABBITMQADMIN"); p != "" {
		return p
	}
	p, err := exec.LookPath("rabbitmqadmin")
	if err != nil {
		t.Fatalf("rabbitmqadmin not found (set RABBITMQADMIN or put it on the PATH): %s", missingTool)
	}
	return p
}

// rabbitmqadmin runs the CLI against the management API under test as guest, with args after
// the connection options, and returns its standard output; a failing command fails the test.
func rabbitmqadmin(t *testing.T, args ...string) string {
	t.Helper()
	out, err := rabbitmqadminRun(t, args...)
	if err != nil {
		t.Fatalf("rabbitmqadmin %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// rabbitmqadminRun is rabbitmqadmin that returns the error (and stderr in the output) instead
// of failing.
func rabbitmqadminRun(t *testing.T, args ...string) (string, error) {
	t.Helper()
	if mgmtURL == "" {
		t.Fatal("AMQP_URL is set but MGMT_URL is not: set it to the broker's management API")
	}
	u, err := url.Parse(mgmtURL)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	full := append([]string{rabbitmqadminPath(t), "-H", u.Hostname(), "-P", u.Port(), "-u", "guest", "-p", "guest"}, args...)
	out, err := exec.CommandContext(ctx, python, full...).CombinedOutput()
	return string(out), err
}

// rabbitmqadminJSON runs a list command with -f raw_json and decodes its output.
func rabbitmqadminJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out := rabbitmqadmin(t, append([]string{"-f", "raw_json"}, args...)...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("rabbitmqadmin -f raw_json %s: %v in %q", strings.Join(args, " "), err, out)
	}
}

// TestRabbitmqadminClosesConnection: `rabbitmqadmin list connections` shows a client's
// connection and `close connection name=…` closes it.
func TestRabbitmqadminClosesConnection(t *testing.T) {
	c := dial(t)
	closed := c.NotifyClose(make(chan *amqp.Error, 1))
	var cs []struct {
		Name     string `json:"name"`
		PeerPort int    `json:"peer_port"`
	}
	var name string
	deadline := time.Now().Add(timeout)
	for name == "" && time.Now().Before(deadline) {
		rabbitmqadminJSON(t, &cs, "list", "connections", "name", "peer_port")
		for _, x := range cs {
			if strings.HasPrefix(x.Name, c.LocalAddr().String()+" ") {
				name = x.Name
			}
		}
		if name == "" {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if name == "" {
		t.Fatalf("rabbitmqadmin list connections does not show %s: %+v", c.LocalAddr(), cs)
	}
	rabbitmqadmin(t, "close", "connection", "name="+name)
	select {
	case e := <-closed:
		if e == nil || e.Code != 320 {
			t.Fatalf("close = %+v, want 320 CONNECTION_FORCED", e)
		}
	case <-time.After(timeout):
		t.Fatal("no connection.close after rabbitmqadmin close connection")
	}
}
