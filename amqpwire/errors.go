package amqpwire

import (
	"errors"
	"fmt"
	"strconv"
)

// Sentinel errors of this package. Errors returned by the table and frame
// code wrap them with %w and more context; test them with errors.Is.
var (
	// ErrBadProtocolHeader is wrapped by ReadProtocolHeader when the 8-byte
	// protocol header is not "AMQP\x00\x00\x09\x01". 0-9-1 §4.2.2: the
	// server answers with its own protocol header and closes the socket.
	ErrBadProtocolHeader = errors.New("amqpwire: bad protocol header")

	// ErrMalformedTable is wrapped by every structural failure found while
	// reading a field table or array (truncated value, length running past
	// the end, unknown field type).
	ErrMalformedTable = errors.New("amqpwire: malformed field table")

	// ErrTableTooDeep is wrapped when tables and arrays nest deeper than
	// MaxTableDepth, on decode and on encode.
	ErrTableTooDeep = errors.New("amqpwire: field table nested too deeply")

	// ErrUnsupportedValue is wrapped by the table encoder for a Go value
	// that has no AMQP field type.
	ErrUnsupportedValue = errors.New("amqpwire: unsupported field value")
)

// ConnectionError is a protocol failure that closes the whole connection
// (connection.close with Code, Text, ClassID and MethodID).
type ConnectionError struct {
	Code     uint16
	Text     string // reply text, "NAME - detail"; at most 255 bytes once encoded
	ClassID  uint16 // class of the method that caused the failure, or 0
	MethodID uint16 // method that caused the failure, or 0
}

// ChannelError is a protocol failure that closes one channel
// (channel.close with Code, Text, ClassID and MethodID).
type ChannelError struct {
	Code     uint16
	Text     string
	ClassID  uint16
	MethodID uint16
}

func (e *ConnectionError) Error() string {
	return formatError("connection", e.Code, e.Text, e.ClassID, e.MethodID)
}

func (e *ChannelError) Error() string {
	return formatError("channel", e.Code, e.Text, e.ClassID, e.MethodID)
}

func formatError(scope string, code uint16, text string, classID, methodID uint16) string {
	s := "amqp " + scope + " error " + strconv.Itoa(int(code)) + ": " + text
	if classID != 0 || methodID != 0 {
		s += " (class " + strconv.Itoa(int(classID)) + ", method " + strconv.Itoa(int(methodID)) + ")"
	}
	return s
}

// NewConnectionError builds a *ConnectionError whose Text is
// ReplyName(code) + " - " + fmt.Sprintf(format, args...), the RabbitMQ
// reply-text shape. An empty format gives the bare name ("NO_ROUTE").
func NewConnectionError(code uint16, classID, methodID uint16, format string, args ...any) *ConnectionError {
	return &ConnectionError{Code: code, Text: replyText(code, format, args), ClassID: classID, MethodID: methodID}
}

// NewChannelError builds a *ChannelError; Text as in NewConnectionError.
func NewChannelError(code uint16, classID, methodID uint16, format string, args ...any) *ChannelError {
	return &ChannelError{Code: code, Text: replyText(code, format, args), ClassID: classID, MethodID: methodID}
}

func replyText(code uint16, format string, args []any) string {
	name := ReplyName(code)
	if name == "" {
		name = strconv.Itoa(int(code))
	}
	if format == "" {
		return name
	}
	return name + " - " + fmt.Sprintf(format, args...)
}

// CodeNoRoute (312 NO_ROUTE, a soft error) is used by basic.return for a
// mandatory message that no queue took. It is missing from the stripped
// specification XML the generator reads, so it is declared here by hand;
// RabbitMQ's full amqp0-9-1.extended.xml has it.
const CodeNoRoute uint16 = 312

// ReplyName returns the upper-snake name of a reply code as RabbitMQ writes
// it at the start of a reply text ("NOT_FOUND", "NO_ROUTE"), or "" for a
// code the specification does not define.
func ReplyName(code uint16) string {
	if code == CodeNoRoute {
		return "NO_ROUTE"
	}
	return specReplyName(code)
}

// IsHardError reports whether the specification classes the reply code as a
// hard error (one that closes the connection rather than the channel).
// Unknown codes are not hard errors.
func IsHardError(code uint16) bool {
	return specIsHardError(code)
}
