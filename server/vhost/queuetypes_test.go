package vhost

import "testing"

// A quorum queue's delivery limit: 20 by default (RabbitMQ 4.x), its own argument when given
// (-1: off), a policy's when it has none; policies' max-priority does not apply to it. A
// classic queue has no default limit.
func TestQuorumDeliveryLimitDefault(t *testing.T) {
	pol := &Policy{Name: "p", Def: PolicyDef{DeliveryLimit: i64(50), MaxPriority: i64(5)}}
	for _, tc := range []struct {
		what string
		args map[string]any
		p    *Policy
		want int
	}{
		{"quorum", map[string]any{"x-queue-type": "quorum"}, nil, DefaultQuorumDeliveryLimit},
		{"quorum with a limit", map[string]any{"x-queue-type": "quorum", "x-delivery-limit": int32(3)}, nil, 3},
		{"quorum with the limit off", map[string]any{"x-queue-type": "quorum", "x-delivery-limit": int32(-1)}, nil, -1},
		{"quorum under a policy", map[string]any{"x-queue-type": "quorum"}, pol, 50},
		{"quorum off under a policy", map[string]any{"x-queue-type": "quorum", "x-delivery-limit": int64(-1)}, pol, 50},
		{"classic", nil, nil, -1},
		{"classic typed", map[string]any{"x-queue-type": "classic"}, nil, -1},
		{"classic under a policy", nil, pol, 50},
	} {
		qa := mustQueueArgs(t, tc.args).withPolicy(tc.p, true)
		if got := qa.features.DeliveryLimit; got != tc.want {
			t.Errorf("%s: delivery limit %d, want %d", tc.what, got, tc.want)
		}
		if qa.quorum && qa.features.MaxPriority != 0 {
			t.Errorf("%s: a policy's max-priority applied to a quorum queue", tc.what)
		}
	}
}
