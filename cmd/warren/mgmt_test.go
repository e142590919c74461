package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestManagementAPI runs the real binary with --management-listen: the API is served with
// guest's basic auth, lists the client's connection by RabbitMQ's name, and DELETE closes it
// with 320 and the X-Reason text.
func TestManagementAPI(t *testing.T) {
	apiAddr := freeAddr(t)
	_, addr, lines := startBroker(t, "--management-listen", apiAddr)
	go func() {
		for range lines {
		}
	}()
	conn, err := amqp.Dial("amqp://guest:guest@" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))

	do := func(method, path string) (int, []byte) {
		req, err := http.NewRequest(method, "http://"+apiAddr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth("guest", "guest")
		req.Header.Set("X-Reason", "drained by the operator")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	code, body := do("GET", "/api/overview")
	if code != 200 || !strings.Contains(string(body), `"rabbitmq_version":"3.10.25"`) {
		t.Fatalf("GET /api/overview: %d %s", code, body)
	}
	code, body = do("GET", "/api/connections")
	var cs []struct{ Name string }
	if err := json.Unmarshal(body, &cs); err != nil || code != 200 {
		t.Fatalf("GET /api/connections: %d %s (%v)", code, body, err)
	}
	want := conn.LocalAddr().String() + " -> " + addr
	if len(cs) != 1 || cs[0].Name != want {
		t.Fatalf("connections = %+v, want one named %q", cs, want)
	}
	if code, body = do("DELETE", "/api/connections/"+url.PathEscape(want)); code != 204 {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	select {
	case e := <-closed:
		if e == nil || e.Code != 320 || e.Reason != "CONNECTION_FORCED - drained by the operator" {
			t.Errorf("close = %+v, want 320 CONNECTION_FORCED - drained by the operator", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client saw no connection.close")
	}
}
