package vhost

import (
	"testing"
	"time"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/configs"
	"github.com/warrenmq/warren/server/queue"
)

func i64(n int64) *int64   { return &n }
func str(s string) *string { return &s }

func mustQueueArgs(t *testing.T, args map[string]any) queueArgs {
	t.Helper()
	tb, err := amqpwire.NewTable(args)
	if err != nil {
		t.Fatal(err)
	}
	qa, err := parseQueueArgs("q", "/", tb)
	if err != nil {
		t.Fatal(err)
	}
	return qa
}

// A policy combines with a queue's own arguments as in RabbitMQ: the lower limit wins, the
// argument's dead-letter settings and overflow win, max-priority only at creation.
func TestPolicyCombinesWithArguments(t *testing.T) {
	pol := &Policy{Name: "p", Def: PolicyDef{MessageTTL: i64(5000), Expires: i64(60000), MaxLength: i64(10),
		MaxLengthBytes: i64(1000), DeliveryLimit: i64(3), MaxPriority: i64(5), Overflow: str("reject-publish"),
		DeadLetterExchange: str("pol-dlx"), DeadLetterRoutingKey: str("pol-rk")}}

	none := mustQueueArgs(t, nil).withPolicy(pol, true)
	if f := none.features; !f.HasTTL || f.MessageTTL != 5*time.Second || f.MaxLength != 10 || f.MaxBytes != 1000 ||
		f.DeliveryLimit != 3 || f.MaxPriority != 5 || f.Overflow != queue.RejectPublish {
		t.Errorf("policy alone: features %+v", f)
	}
	if none.expires != time.Minute || none.dlx != "pol-dlx" || !none.dlxSet || none.dlrk != "pol-rk" {
		t.Errorf("policy alone: expires %v dlx %q dlrk %q", none.expires, none.dlx, none.dlrk)
	}

	lowerArgs := mustQueueArgs(t, map[string]any{"x-message-ttl": int32(1000), "x-max-length": int32(2),
		"x-expires": int32(1000), "x-dead-letter-exchange": "arg-dlx", "x-overflow": "drop-head"}).withPolicy(pol, false)
	if f := lowerArgs.features; f.MessageTTL != time.Second || f.MaxLength != 2 || f.Overflow != queue.DropHead || f.MaxPriority != 0 {
		t.Errorf("lower arguments: features %+v", f)
	}
	// Each key on its own, as RabbitMQ looks them up: the argument's exchange, the policy's key.
	if lowerArgs.expires != time.Second || lowerArgs.dlx != "arg-dlx" || lowerArgs.dlrk != "pol-rk" {
		t.Errorf("arguments win dead-lettering: dlx %q dlrk %q", lowerArgs.dlx, lowerArgs.dlrk)
	}

	higherArgs := mustQueueArgs(t, map[string]any{"x-message-ttl": int32(9000), "x-max-length": int32(50)}).withPolicy(pol, false)
	if f := higherArgs.features; f.MessageTTL != 5*time.Second || f.MaxLength != 10 {
		t.Errorf("higher arguments: the policy's lower values should win, got %+v", f)
	}
}

// The highest-priority matching policy applies, and a policy change reconfigures live
// queues: a lower max-length drops the oldest messages at once.
func TestPolicyPriorityAndLiveChange(t *testing.T) {
	v := testVhost(t)
	mustDeclareQ(t, v, "jobs.a")
	mustDeclareQ(t, v, "other")
	q := v.queues["jobs.a"]
	for i := 0; i < 5; i++ {
		q.Core().Publish(&queue.Message{Body: []byte{byte(i)}}, nil)
	}
	all, _ := configs.CompilePattern("*")
	jobs, _ := configs.CompilePattern("jobs.*")
	v.SetPolicies([]Policy{
		{Name: "wide", Pattern: all, Priority: 0, Def: PolicyDef{MaxLength: i64(4)}},
		{Name: "jobs", Pattern: jobs, ApplyTo: PolicyQueues, Priority: 1, Def: PolicyDef{MaxLength: i64(2)}},
		{Name: "xs", Pattern: all, ApplyTo: PolicyExchanges, Priority: 9, Def: PolicyDef{MaxLength: i64(1)}},
	})
	if q.policy != "jobs" || q.Core().Stats().Ready != 2 {
		t.Fatalf("jobs.a: policy %q, %d ready; want jobs and 2", q.policy, q.Core().Stats().Ready)
	}
	if o := v.queues["other"]; o.policy != "wide" || o.cur().features.MaxLength != 4 {
		t.Fatalf("other: policy %q max-length %d; want wide and 4", o.policy, o.cur().features.MaxLength)
	}
	if e, _ := q.Core().Get(true); e == nil || e.Msg.Body[0] != 3 {
		t.Fatalf("the oldest messages should have been dropped; head is %v", e)
	}
	v.SetPolicies(nil)
	if q.policy != "" || q.cur().features.MaxLength != -1 {
		t.Fatalf("after removing policies: policy %q max-length %d", q.policy, q.cur().features.MaxLength)
	}
}

// An alternate exchange from a policy catches what an exchange cannot route; the exchange's
// own argument wins over it.
func TestPolicyAlternateExchange(t *testing.T) {
	v := testVhost(t)
	mustDeclareX(t, v, "main", "direct", nil)
	mustDeclareX(t, v, "own", "direct", map[string]any{"alternate-exchange": "ae-arg"})
	all, _ := configs.CompilePattern("*")
	v.SetPolicies([]Policy{{Name: "ae", Pattern: all, ApplyTo: PolicyExchanges, Def: PolicyDef{AlternateExchange: str("ae-pol")}}})
	if got := v.exchanges["main"].alternateExchange(); got != "ae-pol" {
		t.Errorf("main: alternate exchange %q, want ae-pol", got)
	}
	if got := v.exchanges["own"].alternateExchange(); got != "ae-arg" {
		t.Errorf("own: alternate exchange %q, want ae-arg", got)
	}
}
