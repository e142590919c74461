package exchange

import "errors"

// Sentinel errors of this package. The errors returned carry RabbitMQ's reply text (what
// follows "NAME - ") and match these with errors.Is.
var (
	// ErrUnknownKind is matched by NewRouter's error for a kind it does not know. RabbitMQ
	// answers exchange.declare with such a type with 503 COMMAND_INVALID.
	ErrUnknownKind = errors.New("unknown exchange type")

	// ErrInequivalent is matched by Definition.Equivalent's error when a redeclare differs
	// from the existing exchange. RabbitMQ answers with 406 PRECONDITION_FAILED.
	ErrInequivalent = errors.New("inequivalent exchange redeclare")

	// ErrInvalidArgument is matched by Definition.Validate's error for an argument of the
	// wrong type. RabbitMQ answers with 406 PRECONDITION_FAILED.
	ErrInvalidArgument = errors.New("invalid exchange argument")
)

type invalidArgumentError struct {
	text string
}

func (e *invalidArgumentError) Error() string { return e.text }

func (e *invalidArgumentError) Unwrap() error { return ErrInvalidArgument }

type unknownKindError struct {
	kind string
}

func (e *unknownKindError) Error() string { return "unknown exchange type '" + e.kind + "'" }

func (e *unknownKindError) Unwrap() error { return ErrUnknownKind }

// InequivalentError is the error of Definition.Equivalent. Its text is RabbitMQ's, e.g.
// "inequivalent arg 'durable' for exchange 'logs' in vhost '/': received 'false' but current
// is 'true'". It matches ErrInequivalent.
type InequivalentError struct {
	Arg      string // "type", "durable", "auto_delete", "internal" or an argument's name
	Exchange string
	VHost    string
	Received string // the redeclared value as RabbitMQ prints it: 'fanout', none, the value 'x' of type 'longstr'
	Current  string // the existing value, printed the same way
}

func (e *InequivalentError) Error() string {
	return "inequivalent arg '" + e.Arg + "' for exchange '" + e.Exchange + "' in vhost '" +
		e.VHost + "': received " + e.Received + " but current is " + e.Current
}

func (e *InequivalentError) Unwrap() error { return ErrInequivalent }
