package mgmt_test

import (
	"testing"
)

// TestOpsPermissions: get and purge need read on the queue, publish write on the exchange,
// as basic.get, queue.purge and basic.publish do.
func TestOpsPermissions(t *testing.T) {
	api := permissionsAPI(t,
		userGrant{name: "guest", tag: "administrator", configure: "*", write: "*", read: "*"},
		userGrant{name: "writer", tag: "management", write: "*"},
		userGrant{name: "reader", tag: "management", read: "*"})
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
