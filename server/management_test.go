package server

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// Wrong passwords through the management API take the AMQP handshake's schedule per source
// address: failures from one address are refused one per loginFailureInterval, and a correct
// password from it still logs in.
func TestManagementLoginSharesTheFailedLoginSchedule(t *testing.T) {
	s := New(Config{Logger: zerolog.Nop()})
	t.Cleanup(s.loginLimit.close)
	from := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	const n = 10
	start := time.Now()
	for i := range n {
		if _, err := s.Login("guest", "wrong", from); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("attempt %d: %v, want ErrInvalidCredentials", i, err)
		}
	}
	if took, least := time.Since(start), (n-1)*loginFailureInterval; took < least {
		t.Errorf("%d refusals from one address took %v, want at least %v", n, took, least)
	}
	if s.loginLimit.sources() != 1 {
		t.Errorf("%d sources tracked, want the one address", s.loginLimit.sources())
	}
	if _, err := s.Login("guest", "guest", from); err != nil {
		t.Errorf("the correct password after the failures: %v", err)
	}
}
