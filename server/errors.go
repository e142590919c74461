package server

import "github.com/warrenmq/warren/amqpwire"

// The protocol errors the connection and channel layer raises, with RabbitMQ's reply codes and
// texts (clients and the conformance suite compare both). A connection error ends the
// connection with connection.close; a channel error closes only the channel. The model's errors
// (declares, bindings, arguments) are in package vhost, the handshake's in handshake.go.
//
// Errors tied to one method name it: a reply carries the class and method ids of the method
// that failed, which some clients print. m may be nil for a frame that is not a method.

// ids returns m's class and method ids, or zeros.
func ids(m amqpwire.Method) (uint16, uint16) {
	if m == nil {
		return 0, 0
	}
	return m.ClassID(), m.MethodID()
}

// errUnexpectedContent is 505 UNEXPECTED_FRAME on basic.publish: a frame that does not fit the
// content being assembled (content.go).
func errUnexpectedContent(format string, args ...any) error {
	return amqpwire.NewConnectionError(amqpwire.CodeUnexpectedFrame, amqpwire.ClassBasic, amqpwire.MethodBasicPublish, format, args...)
}

// errPublishPrecondition is 406 PRECONDITION_FAILED on basic.publish: a message the channel
// refuses (too large, a bad expiration).
func errPublishPrecondition(format string, args ...any) error {
	return amqpwire.NewChannelError(amqpwire.CodePreconditionFailed, amqpwire.ClassBasic, amqpwire.MethodBasicPublish, format, args...)
}

// errPrecondition is 406 PRECONDITION_FAILED on the channel, for a method used out of place
// (confirm and tx modes, an unknown delivery tag).
func errPrecondition(format string, args ...any) error {
	return amqpwire.NewChannelError(amqpwire.CodePreconditionFailed, 0, 0, format, args...)
}

// errExpectedChannelOpen is 504 CHANNEL_ERROR: the first frame on an unused channel number was
// not channel.open.
func errExpectedChannelOpen(m amqpwire.Method) error {
	c, id := ids(m)
	return amqpwire.NewConnectionError(amqpwire.CodeChannelError, c, id, "expected 'channel.open'")
}

// errSecondChannelOpen is 504 CHANNEL_ERROR: channel.open on a channel that is open or closing.
func errSecondChannelOpen(m amqpwire.Method) error {
	c, id := ids(m)
	return amqpwire.NewConnectionError(amqpwire.CodeChannelError, c, id, "second 'channel.open' seen")
}

// errNotImplemented is 540 NOT_IMPLEMENTED: a method or flag RabbitMQ does not implement
// either (immediate=true, channel.flow active=false, prefetch_size, basic.recover
// requeue=false).
func errNotImplemented(m amqpwire.Method, format string, args ...any) error {
	c, id := ids(m)
	return amqpwire.NewConnectionError(amqpwire.CodeNotImplemented, c, id, format, args...)
}

// errCommandInvalid is 503 COMMAND_INVALID: a method where it may not be sent.
func errCommandInvalid(m amqpwire.Method, format string, args ...any) error {
	c, id := ids(m)
	return amqpwire.NewConnectionError(amqpwire.CodeCommandInvalid, c, id, format, args...)
}
