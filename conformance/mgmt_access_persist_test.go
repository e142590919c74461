package conformance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// What the management API makes is the broker's to keep: the real binary, killed with
// SIGKILL right after the API answered, comes back with every user, vhost, permission,
// topic permission and policy; a reload of the definitions files changes only what the files
// declare; `warren definitions export` includes the API's objects; and the drift report tells
// the files from the live broker. Warren's own behaviour (RabbitMQ has no definitions files).
func TestMgmtAccessPersistsAndSurvivesReload(t *testing.T) {
	bin := buildWarrenBinary(t)
	dir := t.TempDir()
	addr, mgmtAddr := freeAddr(t), freeAddr(t)
	writeCfgFile(t, dir, "warren.yaml", simpleConfig(addr))
	defsBefore := fmt.Sprintf(dedent(`
		users:
		  - {name: ops, password-hash: %q, tags: [administrator]}
		permissions:
		  - {user: ops, vhost: /, configure: "*", write: "*", read: "*"}
		policies:
		  - {name: filepol, vhost: /, pattern: "file.*", definition: {max-length: 5}}
	`), passwordHash("ops-pw"))
	writeCfgFile(t, dir, "defs.yaml", defsBefore)
	start := func() *cfgBroker {
		return startCfgBrokerIn(t, bin, dir, addr, "--management-listen", mgmtAddr)
	}
	b := start()
	ops := &httpAPI{t: t, base: "http://" + mgmtAddr, user: "ops", pass: "ops-pw"}

	ops.want(http.MethodPut, "/api/users/app", `{"password":"app-pw","tags":"management"}`, http.StatusCreated)
	ops.want(http.MethodPut, "/api/vhosts/apivh", `{"description":"made through the API"}`, http.StatusCreated)
	ops.want(http.MethodPut, "/api/permissions/apivh/app", `{"configure":".*","write":".*","read":"^app\\."}`, http.StatusCreated)
	ops.want(http.MethodPut, "/api/topic-permissions/apivh/app", `{"exchange":"amq.topic","write":"^a","read":".*"}`, http.StatusCreated)
	ops.want(http.MethodPut, "/api/policies/apivh/apipol", `{"pattern":"^app\\.","definition":{"max-length":2},"apply-to":"queues"}`, http.StatusCreated)
	// The files own what they declare: the API may not change it (re-sending it as it is works).
	if body := ops.want(http.MethodPut, "/api/users/ops", `{"password":"ops-pw","tags":"management"}`, http.StatusBadRequest); !strings.Contains(body, "definitions files") {
		t.Errorf("changing a file's user: %s, want a reason naming the definitions files", body)
	}
	ops.want(http.MethodPut, "/api/users/ops", `{"password":"ops-pw","tags":"administrator"}`, http.StatusNoContent)
	ops.want(http.MethodDelete, "/api/policies/%2F/filepol", "", http.StatusBadRequest)

	// SIGKILL: nothing gets to flush.
	if err := b.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-b.exited
	b.terminated = true
	b = start()
	checkAPIObjects := func(when string) {
		t.Helper()
		conn, err := amqp.Dial(b.url("app", "app-pw", "apivh"))
		if err != nil {
			t.Fatalf("%s: app cannot connect to apivh: %v", when, err)
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		// read "^app\." is honoured: app.q may be consumed from, other.q not
		for _, q := range []string{"app.q", "other.q"} {
			if _, err := ch.QueueDeclare(q, false, true, false, false, nil); err != nil {
				t.Fatalf("%s: declare %s: %v", when, q, err)
			}
		}
		if _, err := ch.Consume("app.q", "", true, false, false, false, nil); err != nil {
			t.Fatalf("%s: consume app.q: %v", when, err)
		}
		_, err = ch.Consume("other.q", "", true, false, false, false, nil)
		wantError(t, err, amqp.AccessRefused, "ACCESS_REFUSED - access to queue 'other.q' in vhost 'apivh' refused for user 'app'")
		var u map[string]any
		ops.json(http.MethodGet, "/api/users/app", &u)
		if tags, _ := json.Marshal(u["tags"]); string(tags) != `["management"]` {
			t.Errorf("%s: app's tags = %s", when, tags)
		}
		var pol map[string]any
		ops.json(http.MethodGet, "/api/policies/apivh/apipol", &pol)
		if pol["pattern"] != `^app\.` || pol["apply-to"] != "queues" {
			t.Errorf("%s: policy = %v", when, pol)
		}
		var tp []map[string]any
		ops.json(http.MethodGet, "/api/topic-permissions/apivh/app", &tp)
		if len(tp) != 1 || tp[0]["write"] != "^a" {
			t.Errorf("%s: topic permissions = %v", when, tp)
		}
		var v map[string]any
		ops.json(http.MethodGet, "/api/vhosts/apivh", &v)
		if v["description"] != "made through the API" {
			t.Errorf("%s: vhost = %v", when, v)
		}
	}
	checkAPIObjects("after SIGKILL")

	// The reload drops the file's policy and adds a file user; the API's objects stay.
	b.writeDefs(fmt.Sprintf(dedent(`
		users:
		  - {name: ops, password-hash: %q, tags: [administrator]}
		  - {name: late, password-hash: %q, tags: []}
		permissions:
		  - {user: ops, vhost: /, configure: "*", write: "*", read: "*"}
	`), passwordHash("ops-pw"), passwordHash("late-pw")))
	b.mustReload()
	checkAPIObjects("after the reload")
	ops.want(http.MethodGet, "/api/policies/%2F/filepol", "", http.StatusNotFound)
	ops.want(http.MethodGet, "/api/users/late", "", http.StatusOK)

	ops.want(http.MethodPut, "/api/users/nopw", `{"tags":""}`, http.StatusCreated) // no password: cannot log in
	exp, text := b.export()
	// The export, API objects included, is a valid definitions file.
	exported := writeCfgFile(t, t.TempDir(), "exported.yaml", text)
	if r := runWarren(t, b.bin, "", "", "config", "check", exported); r.code != 0 {
		t.Errorf("warren config check of the export:\n%v", r)
	}
	if !slices.ContainsFunc(exp.Users, func(u struct {
		Name string `yaml:"name"`
	}) bool {
		return u.Name == "app"
	}) || !slices.ContainsFunc(exp.Vhosts, func(v struct {
		Name string `yaml:"name"`
	}) bool {
		return v.Name == "apivh"
	}) || !strings.Contains(text, "apipol") {
		t.Errorf("definitions export lacks the API's user, vhost or policy:\n%s", text)
	}

	// Drift: the API's objects are live only; a queue added to the files without a reload is
	// in the files only.
	b.writeDefs(fmt.Sprintf(dedent(`
		users:
		  - {name: ops, password-hash: %q, tags: [administrator]}
		  - {name: late, password-hash: %q, tags: []}
		permissions:
		  - {user: ops, vhost: /, configure: "*", write: "*", read: "*"}
		queues:
		  - {name: drift.q}
	`), passwordHash("ops-pw"), passwordHash("late-pw")))
	var d struct {
		OnlyLive    []map[string]any `json:"only_live"`
		OnlyInFiles []map[string]any `json:"only_in_files"`
		Different   []map[string]any `json:"different"`
	}
	ops.json(http.MethodGet, "/api/warren/definitions/drift", &d)
	has := func(l []map[string]any, kind, name string) bool {
		return slices.ContainsFunc(l, func(m map[string]any) bool { return m["kind"] == kind && m["name"] == name })
	}
	if !has(d.OnlyLive, "user", "app") || !has(d.OnlyLive, "vhost", "apivh") || !has(d.OnlyLive, "policy", "apipol") {
		t.Errorf("drift only_live = %v, want the API's user, vhost and policy", d.OnlyLive)
	}
	if !has(d.OnlyInFiles, "queue", "drift.q") {
		t.Errorf("drift only_in_files = %v, want queue drift.q", d.OnlyInFiles)
	}
	r := runWarren(t, b.bin, "", "", "definitions", "drift", "--config", b.configPath())
	if r.code != 0 || !strings.Contains(r.stdout, "only live: user app\n") || !strings.Contains(r.stdout, "only in the files: queue drift.q in vhost /\n") {
		t.Errorf("warren definitions drift:\n%v", r)
	}
	// The users' hashes in the files changed (new salts) but not their passwords: different.
	if has(d.OnlyLive, "user", "ops") || has(d.OnlyInFiles, "user", "ops") {
		t.Errorf("drift reports ops, which both have: %+v", d)
	}
}

// httpAPI is a management API client of a broker process.
type httpAPI struct {
	t                *testing.T
	base, user, pass string
}

// want sends a request with a JSON body (or none) and checks the status; it returns the body.
func (h *httpAPI) want(method, path, body string, status int) string {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	}
	req, err := http.NewRequest(method, h.base+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	req.SetBasicAuth(h.user, h.pass)
	req.Header.Set("Content-Type", "application/json")
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		h.t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, status, out)
	}
	return string(out)
}

// json GETs path (200) into v.
func (h *httpAPI) json(method, path string, v any) {
	h.t.Helper()
	out := h.want(method, path, "", http.StatusOK)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		h.t.Fatalf("%s %s: %v in %s", method, path, err, out)
	}
}
