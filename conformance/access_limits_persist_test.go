package conformance

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Limits and topic permissions in the definitions files are enforced; those made through the
// management API survive SIGKILL of the real binary; `warren definitions export` writes both
// back in the files' shape. Warren's own (RabbitMQ has no definitions files).
func TestLimitsAndTopicPermissionsFromFilesAndAfterKill(t *testing.T) {
	warrenOnly(t, "definitions files and SIGKILL of the broker process")
	bin := buildWarrenBinary(t)
	dir := t.TempDir()
	addr, mgmtAddr := freeAddr(t), freeAddr(t)
	writeCfgFile(t, dir, "warren.yaml", simpleConfig(addr))
	writeCfgFile(t, dir, "defs.yaml", fmt.Sprintf(dedent(`
		vhosts:
		  - {name: small, limits: {max-connections: 1, max-queues: 1}}
		users:
		  - {name: ops, password-hash: %q, tags: [administrator]}
		  - {name: app, password-hash: %q, limits: {max-channels: 1}}
		permissions:
		  - {user: ops, vhost: small, configure: "*", write: "*", read: "*"}
		  - {user: ops, vhost: /, configure: "*", write: "*", read: "*"}
		  - {user: app, vhost: /, configure: "*", write: "*", read: "*"}
		topic-permissions:
		  - {user: app, exchange: amq.topic, write: "^{username}\\.", read: ".*"}
	`), passwordHash("ops-pw"), passwordHash("app-pw")))
	start := func() *cfgBroker { return startCfgBrokerIn(t, bin, dir, addr, "--management-listen", mgmtAddr) }
	b := start()
	ops := &httpAPI{t: t, base: "http://" + mgmtAddr, user: "ops", pass: "ops-pw"}

	// The files' limits.
	first := b.dial("ops", "ops-pw", "small")
	wantDialRefused(t, b.url("ops", "ops-pw", "small"), amqp.NotAllowed,
		"NOT_ALLOWED - access to vhost 'small' refused for user 'ops': connection limit (1) is reached")
	ch := channel(t, first)
	if _, err := ch.QueueDeclare("q1", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	_, err := ch.QueueDeclare("q2", false, false, false, false, nil)
	wantError(t, err, amqp.PreconditionFailed, "PRECONDITION_FAILED - cannot declare queue 'q2': queue limit in vhost 'small' (1) is reached")
	_ = first.Close()
	app := b.dial("app", "app-pw", "/")
	appClosed := notifyConnClose(app)
	appCh := channel(t, app)
	closed := notifyClose(appCh)
	if err := appCh.Publish("amq.topic", "other.x", false, false, amqp.Publishing{}); err != nil {
		t.Fatal(err)
	}
	wantClosed(t, closed, amqp.AccessRefused, "ACCESS_REFUSED - access to topic 'other.x' in exchange 'amq.topic' in vhost '/' refused for user 'app'")
	channel(t, app)
	if _, err := app.Channel(); err == nil {
		t.Fatal("app opened a second channel over the files' max-channels 1")
	}
	wantClosed(t, appClosed, amqp.NotAllowed, "NOT_ALLOWED - number of channels opened for user 'app' has reached the maximum allowed user limit of (1)")
	// The API may not change what the files declare.
	if body := ops.want(http.MethodPut, "/api/vhost-limits/small/max-queues", `{"value":5}`, http.StatusBadRequest); !strings.Contains(body, "definitions files") {
		t.Errorf("changing a file vhost's limit: %s", body)
	}

	// Limits made through the API, then SIGKILL.
	ops.want(http.MethodPut, "/api/users/api", `{"password":"api-pw","tags":""}`, http.StatusCreated)
	ops.want(http.MethodPut, "/api/permissions/%2F/api", `{"configure":".*","write":".*","read":".*"}`, http.StatusCreated)
	ops.want(http.MethodPut, "/api/user-limits/api/max-connections", `{"value":0}`, http.StatusNoContent)
	ops.want(http.MethodPut, "/api/vhost-limits/%2F/max-queues", `{"value":0}`, http.StatusNoContent)
	if err := b.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-b.exited
	b.terminated = true
	b = start()
	wantDialRefused(t, b.url("api", "api-pw", "/"), amqp.NotAllowed,
		"NOT_ALLOWED - connection refused for user 'api': user connection limit (0) is reached")
	conn := b.dial("ops", "ops-pw", "/")
	_, err = channel(t, conn).QueueDeclare("any", false, false, false, false, nil)
	wantError(t, err, amqp.PreconditionFailed, "PRECONDITION_FAILED - cannot declare queue 'any': queue limit in vhost '/' (0) is reached")

	_, text := b.export()
	for _, part := range []string{
		"name: small\n    limits:\n      max-connections: 1\n      max-queues: 1",
		"limits:\n      max-channels: 1",
		"limits:\n      max-connections: 0",
		"name: /\n    limits:\n      max-queues: 0",
		"topic-permissions:\n  - user: app\n    vhost: /\n    exchange: amq.topic\n    write: ^{username}\\.",
	} {
		if !strings.Contains(text, part) {
			t.Errorf("definitions export lacks %q:\n%s", part, text)
		}
	}
	exported := writeCfgFile(t, t.TempDir(), "exported.yaml", text)
	if r := runWarren(t, b.bin, "", "", "config", "check", exported); r.code != 0 {
		t.Errorf("warren config check of the export:\n%v", r)
	}
}
