package mgmt_test

import (
	"net/http/httptest"
	"testing"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/configs"
	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/server/mgmt"
)

// TestOpsPermissions: get and purge need read on the queue, publish write on the exchange,
// as basic.get, queue.purge and basic.publish do.
func TestOpsPermissions(t *testing.T) {
	all, err := configs.CompilePattern("*")
	if err != nil {
		t.Fatal(err)
	}
	none, err := configs.CompilePattern("")
	if err != nil {
		t.Fatal(err)
	}
	acc, err := server.NewAccess(
		[]server.Account{account("guest", "administrator"), account("writer", "management"), account("reader", "management")},
		[]server.Grant{
			{User: "guest", Vhost: "/", Permissions: server.Permissions{Configure: all, Write: all, Read: all}},
			{User: "writer", Vhost: "/", Permissions: server.Permissions{Configure: none, Write: all, Read: none}},
			{User: "reader", Vhost: "/", Permissions: server.Permissions{Configure: none, Write: none, Read: all}},
		})
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{Logger: zerolog.Nop(), Access: acc})
	if err := srv.Recover(); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(mgmt.Handler(t.Context(), srv, mgmt.Identity{Node: "warren@test"}, zerolog.Nop()))
	defer hs.Close()
	api := hs.URL + "/api"
	msg := `{"routing_key":"q","properties":{},"payload":"m","payload_encoding":"string"}`
	getBody := `{"count":1,"ackmode":"ack_requeue_false","encoding":"auto"}`

	want(t, "PUT", api+"/queues/%2F/q", "guest", `{}`, 201, "")
	want(t, "POST", api+"/exchanges/%2F/amq.default/publish", "reader", msg, 400,
		"403 ACCESS_REFUSED - access to exchange 'amq.default' in vhost '/' refused for user 'reader'")
	want(t, "POST", api+"/exchanges/%2F/amq.default/publish", "writer", msg, 200, "")
	want(t, "POST", api+"/queues/%2F/q/get", "writer", getBody, 401,
		"ACCESS_REFUSED - access to queue 'q' in vhost '/' refused for user 'writer'")
	want(t, "DELETE", api+"/queues/%2F/q/contents", "writer", "", 401, "Access refused.")
	want(t, "POST", api+"/queues/%2F/q/get", "reader", getBody, 200, "")
	want(t, "DELETE", api+"/queues/%2F/q/contents", "reader", "", 204, "")
}
