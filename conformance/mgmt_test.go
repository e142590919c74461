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
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName("conformance-mgmt-close")
	conn, err := amqp.DialConfig(brokerURL, amqp.Config{Properties: props})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))

	var name string
	deadline := time.Now().Add(timeout) // RabbitMQ lists a connection after its stats emit
	for name == "" && time.Now().Before(deadline) {
		var cs []struct {
			Name             string `json:"name"`
			ClientProperties struct {
				ConnectionName string `json:"connection_name"`
			} `json:"client_properties"`
		}
		a.json("GET", "/api/connections", nil, 200, &cs)
		for _, c := range cs {
			if c.ClientProperties.ConnectionName == "conformance-mgmt-close" {
				name = c.Name
			}
		}
		if name == "" {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if name == "" {
		t.Fatal("the connection is not listed in /api/connections")
	}
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
