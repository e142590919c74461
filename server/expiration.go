package server

import (
	"strconv"
)

// parseExpiration validates the expiration property the way RabbitMQ's
// rabbit_basic:parse_expiration does: a decimal count of milliseconds, optionally signed, with
// nothing after the digits, and not negative. It returns the value in milliseconds.
func parseExpiration(s string) (int64, error) {
	digits := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= '0' && c <= '9' {
			digits = i + 1
			continue
		}
		if i == 0 && (c == '-' || c == '+') {
			continue
		}
		break
	}
	start := 0
	if len(s) > 0 && (s[0] == '-' || s[0] == '+') {
		start = 1
	}
	if digits <= start {
		return 0, expirationError(s, "no_integer")
	}
	n, err := strconv.ParseInt(s[:digits], 10, 64)
	if err != nil {
		return 0, expirationError(s, "{value_too_large,"+s[:digits]+"}")
	}
	if digits < len(s) {
		return 0, expirationError(s, "{leftover_string,\""+s[digits:]+"\"}")
	}
	if n < 0 {
		return 0, expirationError(s, "{value_negative,"+strconv.FormatInt(n, 10)+"}")
	}
	return n, nil
}

func expirationError(s, reason string) error {
	return errPublishPrecondition("invalid expiration '%s': %s", s, reason)
}
