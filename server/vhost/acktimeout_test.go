package vhost

import "testing"

// Of a queue's timeout argument and a policy's, the lower applies; the argument's action wins
// over the policy's; without either nothing is set (the broker's consumer timeout applies).
func TestAckTimeoutsCombineWithPolicy(t *testing.T) {
	pol := &Policy{Name: "p", Def: PolicyDef{ConsumerTimeout: i64(5000), DeliveryTimeout: i64(2000),
		DeliveryTimeoutAction: str(DeliveryTimeoutDeadLetter)}}
	for _, tc := range []struct {
		name string
		args map[string]any
		pol  *Policy
		want AckTimeouts
	}{
		{"nothing", nil, nil, AckTimeouts{Consumer: -1, Delivery: -1}},
		{"arguments", map[string]any{"x-consumer-timeout": int32(100), "x-delivery-timeout": int64(50),
			"x-delivery-timeout-action": "dead-letter"}, nil, AckTimeouts{Consumer: 100, Delivery: 50, DeadLetter: true}},
		{"policy alone", nil, pol, AckTimeouts{Consumer: 5000, Delivery: 2000, DeadLetter: true}},
		{"lower arguments win", map[string]any{"x-consumer-timeout": int32(100), "x-delivery-timeout": int32(50),
			"x-delivery-timeout-action": "requeue"}, pol, AckTimeouts{Consumer: 100, Delivery: 50}},
		{"lower policy wins", map[string]any{"x-consumer-timeout": int32(9000), "x-delivery-timeout": int32(9000)}, pol,
			AckTimeouts{Consumer: 5000, Delivery: 2000, DeadLetter: true}},
	} {
		qa := mustQueueArgs(t, tc.args).withPolicy(tc.pol, false)
		a := qa.ack
		if got := (AckTimeouts{Consumer: a.consumer, Delivery: a.delivery, DeadLetter: a.deadLetter}); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
