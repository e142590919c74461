package amqpwire

import (
	"testing"
)

func TestBasicPublishDecodeInto(t *testing.T) {
	want := &BasicPublish{Exchange: "orders", RoutingKey: "order.created", Mandatory: true}
	payload := AppendMethod(nil, want)
	if !IsBasicPublish(payload) || IsBasicPublish(AppendMethod(nil, &BasicAck{DeliveryTag: 1})) {
		t.Fatal("IsBasicPublish tells basic.publish from other methods wrongly")
	}
	var m BasicPublish
	if err := m.DecodeInto(payload); err != nil || m != *want {
		t.Fatalf("DecodeInto: %+v, %v; want %+v", m, err, *want)
	}
	// The same exchange and key again: no allocation.
	if n := testing.AllocsPerRun(100, func() { _ = m.DecodeInto(payload) }); n != 0 {
		t.Errorf("decoding the same publish again allocates %.0f times", n)
	}
	other := AppendMethod(nil, &BasicPublish{Exchange: "", RoutingKey: "q", Immediate: true})
	if err := m.DecodeInto(other); err != nil || m.Exchange != "" || m.RoutingKey != "q" || m.Mandatory || !m.Immediate {
		t.Fatalf("DecodeInto another publish: %+v, %v", m, err)
	}
	if err := m.DecodeInto(payload[:len(payload)-2]); err == nil {
		t.Fatal("a truncated publish decodes without error")
	}
}
