package amqpwire

// IsBasicPublish reports whether a method frame payload is a basic.publish, the one method a
// broker decodes for every message.
func IsBasicPublish(payload []byte) bool {
	return len(payload) >= 4 && payload[0] == 0 && payload[1] == 60 && payload[2] == 0 && payload[3] == 40
}

// DecodeInto decodes a basic.publish method frame payload (class and method ids included)
// into m, which a channel keeps from one publish to the next: when the exchange and routing
// key are the bytes m already holds, their strings are kept, so a publisher that sends to the
// same exchange and key costs no allocation here.
func (m *BasicPublish) DecodeInto(payload []byte) error {
	r := argReader{buf: payload[4:]}
	m.Reserved1 = r.short()
	m.Exchange = r.shortstrReusing(m.Exchange)
	m.RoutingKey = r.shortstrReusing(m.RoutingKey)
	bits0 := r.octet()
	m.Mandatory = bits0&0x01 != 0
	m.Immediate = bits0&0x02 != 0
	return r.finish(m)
}

// shortstrReusing reads a shortstr, returning prev when the bytes are equal to it.
func (r *argReader) shortstrReusing(prev string) string {
	n := r.octet()
	p := r.take(uint64(n), "shortstr")
	if string(p) == prev {
		return prev
	}
	return string(p)
}
