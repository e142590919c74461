package binding

import "errors"

// Sentinel errors of this package. The errors returned carry RabbitMQ's wording in their text
// and match these with errors.Is.
var (
	// ErrInvalidBinding is matched by every error that rejects a binding's arguments, such as
	// an x-match value other than all, any, all-with-x or any-with-x. The broker answers it
	// with 406 PRECONDITION_FAILED and the error's text, as RabbitMQ does for binding_invalid.
	ErrInvalidBinding = errors.New("invalid binding")
)

// invalidBindingError is an ErrInvalidBinding whose text is exactly RabbitMQ's explanation,
// without a prefix, so that the broker can put it after "PRECONDITION_FAILED - ".
type invalidBindingError struct {
	text string
}

func (e *invalidBindingError) Error() string { return e.text }

func (e *invalidBindingError) Unwrap() error { return ErrInvalidBinding }
