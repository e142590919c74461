package mgmt

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
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
