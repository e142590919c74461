package exchange

import (
	"math"
	"strconv"

	"github.com/warrenmq/warren/amqpwire"
)

// KindDelayed is the delayed-message exchange of RabbitMQ's rabbitmq-delayed-message-exchange
// plugin: it routes as the kind named by its x-delayed-type argument, and holds a message
// whose x-delay header is a positive number of milliseconds until then. The router of such an
// exchange is the x-delayed-type kind's; holding messages is the broker's business.
const KindDelayed = "x-delayed-message"

// DelayedTypeArg is the argument that names a delayed-message exchange's routing kind.
const DelayedTypeArg = "x-delayed-type"

// RouterKind is the kind of router d routes with: its Kind, or for a delayed-message exchange
// the kind in x-delayed-type. A delayed-message exchange without a longstr x-delayed-type (or
// one naming the delayed kind itself) gives an error matching ErrInvalidArgument with the
// plugin's text (406 PRECONDITION_FAILED); a kind NewRouter does not know gives
// ErrUnknownKind's (503 COMMAND_INVALID), as the plugin's rabbit_exchange:check_type does.
func (d Definition) RouterKind() (string, error) {
	if d.Kind != KindDelayed {
		return d.Kind, nil
	}
	v, ok, err := d.Args.Get(DelayedTypeArg)
	if err != nil {
		return "", err
	}
	kind, isString := v.(string)
	if b, isBytes := v.([]byte); isBytes {
		kind, isString = string(b), true
	}
	if !ok || !isString || kind == KindDelayed {
		return "", &invalidArgumentError{"Invalid argument, '" + DelayedTypeArg + "' must be an existing exchange type"}
	}
	if !KnownKind(kind) {
		return "", &unknownKindError{kind}
	}
	return kind, nil
}

// Delayed reports whether d is a delayed-message exchange.
func (d Definition) Delayed() bool { return d.Kind == KindDelayed }

// MaxDelay is the longest x-delay the plugin holds a message for, in milliseconds (an Erlang
// timer's limit, 2^32-1); a longer one is routed at once, as the plugin does.
const MaxDelay = 1<<32 - 1

// Delay reads a message's x-delay header as the plugin does (rabbit_delayed_message_utils):
// an integer of any width, a float or decimal truncated, or a string of decimal digits. It
// reports the delay in milliseconds and whether the message is to be held: 0 < delay <=
// MaxDelay. An absent, zero, negative, too long or unreadable x-delay routes at once.
func Delay(headers amqpwire.Table) (int64, bool) {
	if len(headers) == 0 {
		return 0, false
	}
	v, ok, err := headers.Get(DelayHeader)
	if err != nil || !ok {
		return 0, false
	}
	var ms int64
	switch v := v.(type) {
	case int8:
		ms = int64(v)
	case uint8:
		ms = int64(v)
	case int16:
		ms = int64(v)
	case uint16:
		ms = int64(v)
	case int32:
		ms = int64(v)
	case uint32:
		ms = int64(v)
	case int64:
		ms = v
	case float32:
		ms = truncate(float64(v))
	case float64:
		ms = truncate(v)
	case amqpwire.Decimal:
		f := float64(v.Value)
		for range v.Scale {
			f /= 10
		}
		ms = truncate(f)
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, false
		}
		ms = n
	default:
		return 0, false
	}
	if ms <= 0 || ms > MaxDelay {
		return 0, false
	}
	return ms, true
}

// truncate is Erlang's trunc for a delay: NaN and out-of-range values route at once.
func truncate(f float64) int64 {
	if math.IsNaN(f) || f <= 0 || f > MaxDelay {
		return 0
	}
	return int64(f)
}

// DelayHeader is the header that asks a delayed-message exchange to hold a message.
const DelayHeader = "x-delay"
