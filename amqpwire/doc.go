// Package amqpwire is the AMQP 0-9-1 wire codec of Warren: frames, method
// arguments, content headers with their basic properties, and field tables.
//
// It does no I/O beyond the io.Reader and io.Writer it is given, holds no
// global mutable state and never panics on input from the wire: every length
// read from the wire is checked against the bytes that remain (and against
// the negotiated frame size) before anything is allocated.
//
// Protocol failures are reported as *ConnectionError or *ChannelError with
// the reply code and a RabbitMQ-style reply text ("FRAME_ERROR - ...").
//
// The method structs, their codecs, the class and method id constants
// (ClassBasic, MethodBasicPublish) and the reply-code table are generated
// from the specification XML; see internal/gen.
package amqpwire

//go:generate go run ./internal/gen -spec spec/amqp0-9-1.stripped.extended.xml -out methods_gen.go
