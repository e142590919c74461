package main

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// ctlFakeAPI is an httptest management API that answers RabbitMQ-shaped JSON (copied from
// RabbitMQ 3.10.8's answers) and records the requests it got.
type ctlFakeAPI struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []ctlFakeReq
}

type ctlFakeReq struct {
	method, uri, user, password, reason, contentType string
	body                                             string
}

// ctlFakeAnswers maps "METHOD /escaped/path" to a status and a body.
type ctlFakeAnswers map[string]struct {
	status int
	body   string
}

func newCtlFakeAPI(t *testing.T, answers ctlFakeAnswers, tlsServer bool) *ctlFakeAPI {
	f := &ctlFakeAPI{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u, p, _ := r.BasicAuth()
		f.mu.Lock()
		f.reqs = append(f.reqs, ctlFakeReq{r.Method, r.URL.EscapedPath(), u, p, r.Header.Get("X-Reason"), r.Header.Get("Content-Type"), string(body)})
		f.mu.Unlock()
		if u != "guest" || p != "guest" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(401)
			_, _ = io.WriteString(w, `{"error":"not_authorized","reason":"Login failed"}`)
			return
		}
		a, ok := answers[r.Method+" "+r.URL.EscapedPath()]
		if !ok {
			w.WriteHeader(404)
			_, _ = io.WriteString(w, `{"error":"Object Not Found","reason":"Not Found"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		_, _ = io.WriteString(w, a.body)
	})
	if tlsServer {
		f.Server = httptest.NewUnstartedServer(h)
		f.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake the test provokes
		f.StartTLS()
	} else {
		f.Server = httptest.NewServer(h)
	}
	t.Cleanup(f.Close)
	return f
}

func (f *ctlFakeAPI) requests() []ctlFakeReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]ctlFakeReq(nil), f.reqs...)
}

// runCtl runs warren ctl in process with stdout not a terminal, as a script would, and
// returns its output and the exit status main would give.
func runCtl(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := ctl(args, strings.NewReader(""), &out, &errb)
	code = exitCode(err, &errb)
	return out.String(), errb.String(), code
}

const ctlFakeQueues = `[
{"arguments":{},"auto_delete":false,"consumers":0,"durable":true,"exclusive":false,"messages":3,"messages_ready":3,"messages_unacknowledged":0,
 "message_stats":{"publish":3,"publish_details":{"rate":0.4}},"name":"orders","node":"rabbit@h","policy":null,"state":"running","type":"classic","vhost":"/"},
{"arguments":{"x-message-ttl":60000},"auto_delete":false,"consumers":1,"durable":false,"exclusive":false,"messages":0,"messages_ready":0,"messages_unacknowledged":0,
 "name":"tab\there","node":"rabbit@h","policy":null,"state":"running","type":"classic","vhost":"/"}]`

// TestCtlListColumnsAndFormats: list queues prints rabbitmqctl's default columns (name,
// messages) as tab-separated lines without a header when stdout is not a terminal; chosen
// columns, dotted paths into the JSON and missing values; --format table aligns under a
// header; --format json keeps the columns' order with null for a missing value; a tab in a
// name cannot split a row.
func TestCtlListColumnsAndFormats(t *testing.T) {
	api := newCtlFakeAPI(t, ctlFakeAnswers{"GET /api/queues": {200, ctlFakeQueues}}, false)

	out, errOut, code := runCtl(t, "--url", api.URL, "list", "queues")
	if code != 0 || out != "orders\t3\ntab\\there\t0\n" {
		t.Errorf("list queues: exit %d, stdout %q, stderr %q; want the name and messages of each queue, no header", code, out, errOut)
	}

	out, _, code = runCtl(t, "list", "queues", "--url", api.URL, "name", "durable", "message_stats.publish_details.rate", "arguments")
	want := "orders\ttrue\t0.4\t{}\ntab\\there\tfalse\t\t{\"x-message-ttl\":60000}\n"
	if code != 0 || out != want {
		t.Errorf("list queues with columns: exit %d\n got %q\nwant %q", code, out, want)
	}

	out, _, code = runCtl(t, "--url", api.URL, "--format", "table", "list", "queues", "name", "messages", "consumers")
	want = "name       messages  consumers\n" +
		"orders     3         0\n" +
		"tab\\there  0         1\n"
	if code != 0 || out != want {
		t.Errorf("--format table: exit %d\n got:\n%s\nwant:\n%s", code, out, want)
	}

	out, _, code = runCtl(t, "--url", api.URL, "--format", "json", "list", "queues", "name", "messages", "message_stats.publish")
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); code != 0 || err != nil {
		t.Fatalf("--format json: exit %d, %v:\n%s", code, err, out)
	}
	if len(rows) != 2 || rows[0]["name"] != "orders" || rows[0]["messages"] != 3.0 || rows[0]["message_stats.publish"] != 3.0 ||
		rows[1]["message_stats.publish"] != nil {
		t.Errorf("--format json rows = %v", rows)
	}
	if i, j := strings.Index(out, `"name"`), strings.Index(out, `"messages"`); i < 0 || j < i {
		t.Errorf("--format json does not keep the columns' order:\n%s", out)
	}
}

// TestCtlUnknownColumn: a column that is neither a field of RabbitMQ's queue objects nor in
// the answer is a usage error (exit 2) that lists the valid columns, and prints no rows.
func TestCtlUnknownColumn(t *testing.T) {
	api := newCtlFakeAPI(t, ctlFakeAnswers{"GET /api/queues": {200, ctlFakeQueues}, "GET /api/users": {200, `[]`}}, false)
	out, errOut, code := runCtl(t, "--url", api.URL, "list", "queues", "name", "mesages")
	if code != 2 || out != "" || !strings.Contains(errOut, `unknown column "mesages"`) ||
		!strings.Contains(errOut, "messages_ready") || !strings.Contains(errOut, "consumers") {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 listing the valid columns", code, out, errOut)
	}
	// Known fields are valid even when the listing is empty.
	if out, errOut, code := runCtl(t, "--url", api.URL, "list", "users", "name", "hashing_algorithm"); code != 0 || out != "" {
		t.Errorf("list users name hashing_algorithm over no users: exit %d, %q %q", code, out, errOut)
	}
	if _, errOut, code := runCtl(t, "--url", api.URL, "list", "users", "nope"); code != 2 || !strings.Contains(errOut, "password_hash") {
		t.Errorf("list users nope: exit %d, %q", code, errOut)
	}
}

// TestCtlVhostScopes: --vhost (or -p, before or after the command) lists one vhost through
// RabbitMQ's per-vhost path (/api/queues/%2F), filters connections by their vhost field,
// and does not apply to users.
func TestCtlVhostScopes(t *testing.T) {
	api := newCtlFakeAPI(t, ctlFakeAnswers{
		"GET /api/queues/%2F":   {200, ctlFakeQueues},
		"GET /api/queues/other": {200, `[]`},
		"GET /api/connections": {200, `[{"name":"127.0.0.1:1 -> 127.0.0.1:5672","user":"guest","vhost":"/","peer_host":"127.0.0.1","peer_port":1,"state":"running"},
		                                {"name":"127.0.0.1:2 -> 127.0.0.1:5672","user":"app","vhost":"other","peer_host":"127.0.0.1","peer_port":2,"state":"blocked"}]`},
	}, false)
	if out, errOut, code := runCtl(t, "--url", api.URL, "list", "queues", "-p", "/", "name"); code != 0 || out != "orders\ntab\\there\n" {
		t.Errorf("list queues -p /: exit %d, %q %q", code, out, errOut)
	}
	if out, _, code := runCtl(t, "--url", api.URL, "--vhost", "other", "list", "queues"); code != 0 || out != "" {
		t.Errorf("list queues --vhost other: exit %d, %q", code, out)
	}
	out, errOut, code := runCtl(t, "--url", api.URL, "list", "connections", "--vhost", "other")
	if code != 0 || out != "127.0.0.1:2 -> 127.0.0.1:5672\tapp\t127.0.0.1\t2\tblocked\n" {
		t.Errorf("list connections --vhost other: exit %d, %q %q", code, out, errOut)
	}
	if _, errOut, code := runCtl(t, "--url", api.URL, "list", "users", "-p", "/"); code != 2 || !strings.Contains(errOut, "--vhost does not apply") {
		t.Errorf("list users -p /: exit %d, %q", code, errOut)
	}
	var paths []string
	for _, r := range api.requests() {
		paths = append(paths, r.method+" "+r.uri)
	}
	if got := strings.Join(paths, ", "); got != "GET /api/queues/%2F, GET /api/queues/other, GET /api/connections" {
		t.Errorf("requests: %s", got)
	}
}

// TestCtlCommandsSendRabbitMQRequests: close, purge, delete and definitions make the
// requests rabbitmqadmin makes (names escaped as one path segment, the vhost / as %2F,
// X-Reason for the close reason, the definitions file as a JSON body) with the credentials
// from the environment.
func TestCtlCommandsSendRabbitMQRequests(t *testing.T) {
	defs := `{"rabbit_version":"3.10.8","queues":[{"name":"q","vhost":"/","durable":true,"auto_delete":false,"arguments":{}}]}`
	conn := "127.0.0.1:5 -> 127.0.0.1:5672"
	api := newCtlFakeAPI(t, ctlFakeAnswers{
		"DELETE /api/connections/127.0.0.1:5%20-%3E%20127.0.0.1:5672": {204, ""},
		"DELETE /api/queues/%2F/orders/contents":                      {204, ""},
		"DELETE /api/queues/v%2F1/a%20b":                              {204, ""},
		"DELETE /api/exchanges/%2F/x":                                 {204, ""},
		"DELETE /api/policies/%2F/p":                                  {204, ""},
		"DELETE /api/users/bob":                                       {204, ""},
		"DELETE /api/vhosts/v%2F1":                                    {204, ""},
		"GET /api/definitions":                                        {200, defs},
		"GET /api/definitions/%2F":                                    {200, `{"queues":[]}`},
		"POST /api/definitions":                                       {204, ""},
	}, false)
	t.Setenv("WARREN_CTL_URL", api.URL)
	t.Setenv("WARREN_CTL_USER", "guest")
	t.Setenv("WARREN_CTL_PASSWORD", "guest")
	dir := t.TempDir()
	exported := filepath.Join(dir, "defs.json")
	for _, args := range [][]string{
		{"close", "connection", conn, "maintenance window"},
		{"close", "connection", conn},
		{"purge", "queue", "orders"},
		{"delete", "queue", "a b", "-p", "v/1"},
		{"delete", "exchange", "x"},
		{"delete", "policy", "p"},
		{"delete", "user", "bob"},
		{"delete", "vhost", "v/1"},
		{"definitions", "export", exported},
		{"definitions", "export", "--vhost", "/"},
		{"definitions", "import", exported},
	} {
		if out, errOut, code := runCtl(t, args...); code != 0 {
			t.Errorf("warren ctl %s: exit %d, %q %q", strings.Join(args, " "), code, out, errOut)
		}
	}
	got, err := os.ReadFile(exported)
	if err != nil || string(got) != defs {
		t.Errorf("exported file: %q, %v; want the API's answer as it is", got, err)
	}
	if fi, err := os.Stat(exported); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("exported file mode: %v %v; want 0600 (it holds password hashes)", fi.Mode(), err)
	}
	reqs := api.requests()
	if len(reqs) != 11 {
		t.Fatalf("%d requests, want 11: %+v", len(reqs), reqs)
	}
	for _, r := range reqs {
		if r.user != "guest" || r.password != "guest" {
			t.Errorf("%s %s: basic auth %q/%q, want guest/guest from the environment", r.method, r.uri, r.user, r.password)
		}
	}
	if reqs[0].reason != "maintenance window" || reqs[1].reason != "" {
		t.Errorf("X-Reason headers %q, %q; want the reason, then none (RabbitMQ's default text)", reqs[0].reason, reqs[1].reason)
	}
	if imp := reqs[10]; imp.body != defs || imp.contentType != "application/json" {
		t.Errorf("import: body %q content type %q", imp.body, imp.contentType)
	}
}

// TestCtlErrors: the API's reason reaches the operator with exit status 1; a refused login
// names the user and the URL; a broker that is not there says where ctl looked; bad command
// lines exit 2.
func TestCtlErrors(t *testing.T) {
	api := newCtlFakeAPI(t, ctlFakeAnswers{
		"DELETE /api/queues/%2F/locked": {400, `{"error":"bad_request","reason":"cannot obtain exclusive access to locked queue 'locked' in vhost '/'"}`},
		"GET /api/queues":               {500, `internal crash`},
	}, false)
	for _, c := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"--url", api.URL, "--password", "wrong", "list", "queues"}, 1, []string{`user "guest" refused by ` + api.URL + "/api/queues", "401 Unauthorized: Login failed"}},
		{[]string{"--url", api.URL, "delete", "queue", "gone"}, 1, []string{`delete queue "gone" in vhost "/": 404 Not Found: Not Found`}},
		{[]string{"--url", api.URL, "delete", "queue", "locked"}, 1, []string{"400 Bad Request: cannot obtain exclusive access to locked queue 'locked' in vhost '/'"}},
		{[]string{"--url", api.URL, "list", "queues"}, 1, []string{"list queues: 500 Internal Server Error: internal crash"}},
		{[]string{"--url", "http://127.0.0.1:1", "status"}, 1, []string{"cannot reach the management API at http://127.0.0.1:1", "connection refused"}},
		{[]string{"--url", api.URL}, 2, []string{"a command is missing"}},
		{[]string{"--url", api.URL, "frobnicate"}, 2, []string{`unknown command "frobnicate"`}},
		{[]string{"--url", api.URL, "list", "widgets"}, 2, []string{`unknown objects "widgets"`, "queues exchanges bindings"}},
		{[]string{"--url", api.URL, "close", "connection"}, 2, []string{"usage: warren ctl close connection NAME"}},
		{[]string{"--url", api.URL, "delete", "binding", "b"}, 2, []string{`unknown object "binding"`}},
		{[]string{"--url", api.URL, "--format", "xml", "status"}, 2, []string{`--format "xml"`}},
		{[]string{"--url", "localhost:15672", "status"}, 2, []string{`--url "localhost:15672"`}},
		{[]string{"--url", api.URL, "--bogus", "status"}, 2, []string{"flag provided but not defined: -bogus"}},
	} {
		out, errOut, code := runCtl(t, c.args...)
		if code != c.code || out != "" {
			t.Errorf("warren ctl %s: exit %d, stdout %q; want exit %d and no output", strings.Join(c.args, " "), code, out, c.code)
		}
		for _, w := range c.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("warren ctl %s: stderr %q does not say %q", strings.Join(c.args, " "), errOut, w)
			}
		}
	}
	t.Setenv("WARREN_CTL_PASSWORD", "s3cret")
	var help bytes.Buffer
	if err := ctl([]string{"--help"}, nil, io.Discard, &help); !errors.Is(err, flag.ErrHelp) || !strings.Contains(help.String(), "close connection NAME [REASON]") ||
		strings.Contains(help.String(), "s3cret") {
		t.Errorf("--help: %v; want the usage, without the password from the environment:\n%s", err, help.String())
	}
}

// TestCtlTLSWithPrivateCA: an https URL is verified against --ca-cert; without it the
// server's self-signed certificate is refused, and the error says so.
func TestCtlTLSWithPrivateCA(t *testing.T) {
	api := newCtlFakeAPI(t, ctlFakeAnswers{"GET /api/queues": {200, ctlFakeQueues}}, true)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.Certificate().Raw})
	if err := os.WriteFile(ca, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := runCtl(t, "--url", api.URL, "--ca-cert", ca, "list", "queues"); code != 0 || out != "orders\t3\ntab\\there\t0\n" {
		t.Errorf("with --ca-cert: exit %d, %q %q", code, out, errOut)
	}
	if _, errOut, code := runCtl(t, "--url", api.URL, "list", "queues"); code != 1 || !strings.Contains(errOut, "certificate") {
		t.Errorf("without --ca-cert: exit %d, %q; want a certificate error", code, errOut)
	}
	if _, errOut, code := runCtl(t, "--url", strings.Replace(api.URL, "https", "http", 1), "--ca-cert", ca, "list", "queues"); code != 2 || !strings.Contains(errOut, "needs an https") {
		t.Errorf("--ca-cert with http: exit %d, %q", code, errOut)
	}
}

// TestCtlStatusReadsOverviewNodesAlarms: status shows the node, product, uptime, listeners,
// the alarms of a 503 alarms check, totals and rates, as lines, as a table and as JSON.
func TestCtlStatusReadsOverviewNodesAlarms(t *testing.T) {
	api := newCtlFakeAPI(t, ctlFakeAnswers{
		"GET /api/overview": {200, `{"product_name":"RabbitMQ","product_version":"3.10.8","rabbitmq_version":"3.10.8","cluster_name":"rabbit@h","node":"rabbit@h",
			"listeners":[{"node":"rabbit@h","protocol":"amqp","ip_address":"::","port":5672,"socket_opts":[]}],
			"object_totals":{"channels":2,"connections":1,"consumers":1,"exchanges":7,"queues":3},
			"queue_totals":{"messages":5,"messages_details":{"rate":0.0},"messages_ready":4,"messages_unacknowledged":1},
			"message_stats":{"publish":9,"publish_details":{"rate":1.5},"ack":2,"ack_details":{"rate":0.5}}}`},
		"GET /api/nodes":                {200, `[{"name":"rabbit@h","uptime":90061000,"running":true}]`},
		"GET /api/health/checks/alarms": {503, `{"status":"failed","reason":"There are alarms in effect in the cluster","alarms":[{"resource":"memory","node":"rabbit@h"}]}`},
	}, false)
	out, errOut, code := runCtl(t, "--url", api.URL, "status")
	for _, want := range []string{"node\trabbit@h\n", "product\tRabbitMQ 3.10.8\n", "uptime\t1d1h1m1s\n", "listeners\tamqp [::]:5672\n",
		"alarms\tmemory on rabbit@h\n", "queues\t3\n", "messages_unacknowledged\t1\n", "publish_rate\t1.5/s\n", "ack_rate\t0.5/s\n"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("status: exit %d, output lacks %q:\n%s%s", code, want, out, errOut)
		}
	}
	out, _, _ = runCtl(t, "--url", api.URL, "--format", "table", "status")
	if !strings.Contains(out, "alarms:                   memory on rabbit@h\n") {
		t.Errorf("status --format table:\n%s", out)
	}
	out, _, _ = runCtl(t, "--url", api.URL, "--format", "json", "status")
	var r struct {
		UptimeMS     int64              `json:"uptime_ms"`
		Alarms       []string           `json:"alarms"`
		ObjectTotals map[string]int     `json:"object_totals"`
		MessageRates map[string]float64 `json:"message_rates"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.UptimeMS != 90061000 || len(r.Alarms) != 1 || r.ObjectTotals["connections"] != 1 || r.MessageRates["publish"] != 1.5 {
		t.Errorf("status --format json: %+v %v\n%s", r, err, out)
	}
}
