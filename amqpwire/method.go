package amqpwire

// Method is one AMQP method: its identity, its spec attributes and its
// argument codec. Every generated method struct implements it with a
// pointer receiver.
type Method interface {
	ClassID() uint16
	MethodID() uint16
	MethodName() string // "basic.publish"
	// HasContent reports whether a content header and body frames follow
	// (basic.publish, basic.return, basic.deliver, basic.get-ok).
	HasContent() bool
	// Synchronous reports the spec's synchronous attribute: the peer
	// answers with a matching -ok method.
	Synchronous() bool
	// ServerReceives reports whether the spec gives the method a server
	// chassis, that is whether a client may send it to a server.
	ServerReceives() bool
	// Read decodes the argument bytes (after the class and method ids).
	// Strings and tables are copied, never aliasing args. Malformed,
	// truncated or over-long arguments give a *ConnectionError 501
	// FRAME_ERROR with ClassID and MethodID set.
	Read(args []byte) error
	// Append appends the encoded arguments (not the ids) to b.
	Append(b []byte) []byte
	// Validate checks the spec's notnull asserts (see notNullError). It is
	// not called by DecodeMethod.
	Validate() error
}

// DecodeMethod decodes a method frame payload: class id, method id and
// arguments. Errors are *ConnectionError:
//   - a payload shorter than the two ids: 501 FRAME_ERROR (RabbitMQ's frame
//     analysis does not recognise it as a method frame);
//   - unknown class or method: 540 NOT_IMPLEMENTED, ids set;
//   - arguments that cannot be decoded (short, trailing bytes, malformed
//     table, malformed UTF-8 in a shortstr of a method without content):
//     501 FRAME_ERROR "cannot decode ...", as rabbit_misc:frame_error/2 does.
func DecodeMethod(payload []byte) (Method, error) {
	if len(payload) < 4 {
		return nil, NewConnectionError(CodeFrameError, 0, 0,
			"method frame payload of %d bytes is too short for class and method ids", len(payload))
	}
	classID := uint16(payload[0])<<8 | uint16(payload[1])
	methodID := uint16(payload[2])<<8 | uint16(payload[3])
	m := newMethod(classID, methodID)
	if m == nil {
		return nil, NewConnectionError(CodeNotImplemented, classID, methodID,
			"unknown method class %d method %d", classID, methodID)
	}
	if err := m.Read(payload[4:]); err != nil {
		return nil, err
	}
	return m, nil
}

// AppendMethod appends the class id, method id and encoded arguments of m:
// a method frame payload.
func AppendMethod(b []byte, m Method) []byte {
	b = appendShort(b, m.ClassID())
	b = appendShort(b, m.MethodID())
	return m.Append(b)
}

// notNullError is what Validate returns for an empty or zero field the
// spec marks notnull: 502 SYNTAX_ERROR, the spec's code for "illegal values
// for one or more fields". RabbitMQ answers some of these cases with a more
// specific code (403 for declaring the default exchange, 530 for an unknown
// vhost); a server that wants those checks the names itself first.
func notNullError(m Method, field string) error {
	return NewConnectionError(CodeSyntaxError, m.ClassID(), m.MethodID(),
		"%s: field '%s' must not be empty", m.MethodName(), field)
}
