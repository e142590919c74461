package configs

import (
	"reflect"
	"testing"
)

// The acknowledgement timeout keys read durations as milliseconds, in policies and in queue
// arguments, and survive a write and a read back.
func TestAckTimeoutKeys(t *testing.T) {
	defs, err := ParseDefinitions("defs.yaml", []byte(`queues:
  - {name: jobs, arguments: {x-consumer-timeout: 10m, x-delivery-timeout: 2s, x-delivery-timeout-action: dead-letter}}
policies:
  - {name: p, pattern: "jobs.*", apply-to: queues, definition: {consumer-timeout: 30s, delivery-timeout: 500, delivery-timeout-action: requeue}}
`))
	if err != nil {
		t.Fatal(err)
	}
	args := defs.Queues[0].Arguments
	for key, want := range map[string]any{"x-consumer-timeout": int64(600000), "x-delivery-timeout": int64(2000), "x-delivery-timeout-action": "dead-letter"} {
		if !reflect.DeepEqual(args[key], want) {
			t.Errorf("%s = %#v, want %#v", key, args[key], want)
		}
	}
	d := defs.Policies[0].Definition
	if d.ConsumerTimeout == nil || *d.ConsumerTimeout != 30000 || d.DeliveryTimeout == nil || *d.DeliveryTimeout != 500 ||
		d.DeliveryTimeoutAction == nil || *d.DeliveryTimeoutAction != "requeue" {
		t.Errorf("policy definition = %+v", d)
	}
	back, out := roundTrip(t, defs)
	if got, want := withoutPos(back), withoutPos(defs); !reflect.DeepEqual(got.Policies, want.Policies) || !reflect.DeepEqual(got.Queues, want.Queues) {
		t.Errorf("round trip differs:\n%s", out)
	}
}

func TestAckTimeoutKeysChecked(t *testing.T) {
	_, err := ParseDefinitions("defs.yaml", []byte(`queues:
  - {name: q, arguments: {x-consumer-timeout: -1, x-delivery-timeout: 0, x-delivery-timeout-action: drop}}
policies:
  - {name: p, pattern: "*", definition: {consumer-timeout: -5, delivery-timeout: 0s, delivery-timeout-action: later}}
  - {name: x, pattern: "*", apply-to: exchanges, definition: {delivery-timeout: 1s}}
`))
	wantProblems(t, err,
		"defs.yaml:2:47: queues[0].arguments.x-consumer-timeout: x-consumer-timeout -1 is below the minimum of 0",
		"defs.yaml:2:71: queues[0].arguments.x-delivery-timeout: x-delivery-timeout 0 is below the minimum of 1",
		`defs.yaml:2:101: queues[0].arguments.x-delivery-timeout-action: x-delivery-timeout-action "drop" is not one of requeue, dead-letter`,
		"defs.yaml:4:60: policies[0].definition.consumer-timeout: consumer-timeout -5 is below the minimum of 0",
		"defs.yaml:4:82: policies[0].definition.delivery-timeout: delivery-timeout 0 is below the minimum of 1",
		`defs.yaml:4:111: policies[0].definition.delivery-timeout-action: delivery-timeout-action "later" is not one of requeue, dead-letter`,
		"defs.yaml:5:81: policies[1].definition.delivery-timeout: delivery-timeout applies to queues, but the policy applies to exchanges",
	)
}
