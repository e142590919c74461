package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
)

// ctlFakeQuorumQueues is /api/queues after n4 joined qa and qb but not qc (which a pattern
// left out), with a classic queue beside them.
const ctlFakeQuorumQueues = `[
{"name":"qa","vhost":"/","type":"quorum","members":["n1","n2","n4"],"leader":"n1","online":["n1","n2","n4"],"messages":0},
{"name":"qb","vhost":"v1","type":"quorum","members":["n4","n3"],"leader":"n3","online":["n3"],"messages":2},
{"name":"qc","vhost":"/","type":"quorum","members":["n1"],"leader":"n1","online":["n1"],"messages":0},
{"name":"classic","vhost":"/","type":"classic","node":"n1","messages":0}]`

// TestCtlQueuesMembers: warren ctl queues add-member, delete-member (and rabbitmq-queues'
// underscore spellings), grow and shrink send RabbitMQ 3.13's replica requests (method, path,
// JSON body) and print what changed; after grow and shrink, how many quorum queues list the
// node, from the queue listing. The members column lists. Bad command lines exit 2 without
// a request; the API's refusal reaches the operator.
func TestCtlQueuesMembers(t *testing.T) {
	api := newCtlFakeAPI(t, ctlFakeAnswers{
		"POST /api/queues/quorum/%2F/orders/replicas/add":      {204, ""},
		"POST /api/queues/quorum/v%2F1/a%20b/replicas/add":     {204, ""},
		"DELETE /api/queues/quorum/%2F/orders/replicas/delete": {202, ""},
		"POST /api/queues/quorum/replicas/on/n4/grow":          {204, ""},
		"DELETE /api/queues/quorum/replicas/on/n4/shrink":      {202, ""},
		"GET /api/queues": {200, ctlFakeQuorumQueues},
		"POST /api/queues/quorum/%2F/classic/replicas/add": {400, `{"error":"bad_request","reason":"queue 'classic' in vhost '/' is not a quorum queue"}`},
	}, false)
	t.Setenv("WARREN_CTL_URL", api.URL)
	for _, c := range []struct {
		args []string
		out  string
		reqs []string // "METHOD URI BODY"
	}{
		{[]string{"queues", "add-member", "orders", "n4"}, "n4 added to quorum queue 'orders' in vhost '/' (it catches up from the leader)\n",
			[]string{`POST /api/queues/quorum/%2F/orders/replicas/add {"node":"n4"}`}},
		{[]string{"queues", "add_member", "--vhost", "v/1", "a b", "n4"}, "n4 added to quorum queue 'a b' in vhost 'v/1' (it catches up from the leader)\n",
			[]string{`POST /api/queues/quorum/v%2F1/a%20b/replicas/add {"node":"n4"}`}},
		{[]string{"queues", "delete-member", "orders", "n2"}, "n2 removed from quorum queue 'orders' in vhost '/'\n",
			[]string{`DELETE /api/queues/quorum/%2F/orders/replicas/delete {"node":"n2"}`}},
		{[]string{"queues", "delete_member", "orders", "n2"}, "n2 removed from quorum queue 'orders' in vhost '/'\n",
			[]string{`DELETE /api/queues/quorum/%2F/orders/replicas/delete {"node":"n2"}`}},
		{[]string{"queues", "grow", "n4", "all"}, "grow of n4 requested (strategy all)\nn4 is now a member of 2 of 3 matching quorum queues (per queue: warren ctl list queues vhost name members)\n",
			[]string{`POST /api/queues/quorum/replicas/on/n4/grow {"queue_pattern":".*","strategy":"all","vhost_pattern":".*"}`, "GET /api/queues "}},
		{[]string{"queues", "grow", "n4", "even", "--vhost-pattern", "^v", "--queue-pattern", "q[ab]"}, "grow of n4 requested (strategy even)\nn4 is now a member of 1 of 1 matching quorum queues (per queue: warren ctl list queues vhost name members)\n",
			[]string{`POST /api/queues/quorum/replicas/on/n4/grow {"queue_pattern":"q[ab]","strategy":"even","vhost_pattern":"^v"}`, "GET /api/queues "}},
		{[]string{"queues", "shrink", "n4"}, "shrink of n4 requested\nn4 is now a member of 2 of 3 quorum queues (per queue: warren ctl list queues vhost name members)\n",
			[]string{"DELETE /api/queues/quorum/replicas/on/n4/shrink ", "GET /api/queues "}},
		{[]string{"list", "queues", "name", "members"}, "qa\tn1,n2,n4\nqb\tn4,n3\nqc\tn1\nclassic\t\n", []string{"GET /api/queues "}},
	} {
		before := len(api.requests())
		out, errOut, code := runCtl(t, c.args...)
		if code != 0 || out != c.out {
			t.Errorf("warren ctl %s: exit %d, stdout %q, stderr %q; want 0 and %q", strings.Join(c.args, " "), code, out, errOut, c.out)
		}
		var got []string
		for _, r := range api.requests()[before:] {
			got = append(got, r.method+" "+r.uri+" "+r.body)
			if r.body != "" && (r.contentType != "application/json" || !json.Valid([]byte(r.body))) {
				t.Errorf("warren ctl %s: body %q sent as %q, want JSON", strings.Join(c.args, " "), r.body, r.contentType)
			}
		}
		if strings.Join(got, "\n") != strings.Join(c.reqs, "\n") {
			t.Errorf("warren ctl %s sent:\n%s\nwant:\n%s", strings.Join(c.args, " "), strings.Join(got, "\n"), strings.Join(c.reqs, "\n"))
		}
	}

	before := len(api.requests())
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"queues"}, 2, "usage: warren ctl queues add-member QUEUE NODE"},
		{[]string{"queues", "add-member", "orders"}, 2, "usage: warren ctl queues"},
		{[]string{"queues", "delete-member", "orders", "n2", "n3"}, 2, "usage: warren ctl queues"},
		{[]string{"queues", "grow", "n4"}, 2, "usage: warren ctl queues"},
		{[]string{"queues", "grow", "n4", "most"}, 2, `strategy "most": want all or even`},
		{[]string{"queues", "grow", "n4", "all", "--vhost", "/"}, 2, "--vhost does not apply; use --vhost-pattern"},
		{[]string{"queues", "shrink"}, 2, "usage: warren ctl queues"},
		{[]string{"queues", "shrink", "n4", "-p", "/"}, 2, "--vhost does not apply"},
		{[]string{"queues", "add-member", "orders", "n4", "--queue-pattern", "x"}, 2, "apply to grow only"},
		{[]string{"list", "queues", "--vhost-pattern", "x"}, 2, "apply to queues grow only"},
		{[]string{"queues", "rebalance", "all"}, 2, "usage: warren ctl queues"},
	} {
		out, errOut, code := runCtl(t, c.args...)
		if code != c.code || out != "" || !strings.Contains(errOut, c.want) {
			t.Errorf("warren ctl %s: exit %d, stdout %q, stderr %q; want exit %d saying %q", strings.Join(c.args, " "), code, out, errOut, c.code, c.want)
		}
	}
	if n := len(api.requests()) - before; n != 0 {
		t.Errorf("bad command lines sent %d requests, want none", n)
	}
	out, errOut, code := runCtl(t, "queues", "add-member", "classic", "n4")
	if code != 1 || out != "" || !strings.Contains(errOut, `add member n4 of quorum queue "classic" in vhost "/": 400 Bad Request: queue 'classic' in vhost '/' is not a quorum queue`) {
		t.Errorf("a refused add-member: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	var help bytes.Buffer
	if err := ctl([]string{"--help"}, nil, io.Discard, &help); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	for _, w := range []string{"queues add-member QUEUE NODE", "queues grow NODE all|even", "queues shrink NODE", "-queue-pattern", "-vhost-pattern"} {
		if !strings.Contains(help.String(), w) {
			t.Errorf("warren ctl --help does not mention %q:\n%s", w, help.String())
		}
	}
}
