package mgmt

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/server"
)

// TestRefusalLogSummarises: a flood of refused requests logs ten a minute one by one, then
// one line saying how many more were refused.
func TestRefusalLogSummarises(t *testing.T) {
	var buf bytes.Buffer
	l := &refusalLog{log: zerolog.New(&buf)}
	start := time.Now()
	for i := range 15 {
		l.note(start.Add(time.Duration(i)*time.Second), func(z *zerolog.Logger) { z.Info().Msg("refused") })
	}
	l.note(start.Add(61*time.Second), func(z *zerolog.Logger) { z.Info().Msg("refused") })
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 12 {
		t.Fatalf("%d log lines, want 10 + a summary + 1:\n%s", len(lines), buf.String())
	}
	if !strings.Contains(lines[10], `"refused":5`) || !strings.Contains(lines[11], `"message":"refused"`) {
		t.Fatalf("summary %s then %s", lines[10], lines[11])
	}
}

// TestNoQuorumIs503: a change the cluster could not commit (no majority) is 503 with the
// reason, for topology writes and access writes alike, not a 400 blaming the request.
func TestNoQuorumIs503(t *testing.T) {
	err := fmt.Errorf("declare: %w", &server.NoQuorumError{ConnectionError: amqpwire.NewConnectionError(amqpwire.CodeInternalError, 0, 0,
		"failed to declare queue 'q' in vhost '/' because the operation timed out")})
	for _, style := range []errStyle{direct, channel} {
		if status, kind, reason := failure(err, style); status != http.StatusServiceUnavailable || kind != "no_quorum" ||
			!strings.Contains(fmt.Sprint(reason), "timed out") {
			t.Fatalf("failure(%v) = %d %s %v", style, status, kind, reason)
		}
	}
	a := &api{log: zerolog.Nop(), authLog: zerolog.Nop()}
	rec := httptest.NewRecorder()
	a.accFailed(rec, httptest.NewRequest("PUT", "/api/users/u", nil), err)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "no_quorum") {
		t.Fatalf("accFailed: %d %s", rec.Code, rec.Body.String())
	}
}
