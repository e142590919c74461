package conformance

import (
	"net/url"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestManagementListsAndClosesConnections: a client's connection is listed under its
// connection_name, and DELETE /api/connections/{name} closes it with 320 and the X-Reason text,
// as amqp091-go's recovery tests and operators rely on.
func TestManagementListsAndClosesConnections(t *testing.T) {
	a := mgmtAPI(t)
	conn := dialWithName(t, "conformance-mgmt-close")
	defer conn.Close()
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	name := waitListedConnection(t, a, "conformance-mgmt-close")
	req := "/api/connections/" + url.PathEscape(name)
	if code, body := a.doWithReason("DELETE", req, "conformance says goodbye"); code != 204 {
		t.Fatalf("DELETE %s: %d %s", req, code, body)
	}
	select {
	case e := <-closed:
		if e == nil || e.Code != 320 || e.Reason != "CONNECTION_FORCED - conformance says goodbye" {
			t.Fatalf("close = %+v, want 320 CONNECTION_FORCED - conformance says goodbye", e)
		}
	case <-time.After(timeout):
		t.Fatal("no connection.close after DELETE")
	}
}
