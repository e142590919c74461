package metrics

import (
	"bufio"
	"io"
	"math"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// textWriter streams Prometheus's text exposition format 0.0.4, family by family, so a
// scrape of 100,000 queues holds one line at a time rather than every series. Errors stick:
// after the first, writes do nothing and err reports it.
type textWriter struct {
	w   *bufio.Writer
	b   []byte // the line being built
	cur string // the family whose header was written last
	err error
}

func newTextWriter(w io.Writer) *textWriter {
	return &textWriter{w: bufio.NewWriterSize(w, 64<<10), b: make([]byte, 0, 256)}
}

// typeName is the TYPE line's word for a value type.
func typeName(k prometheus.ValueType) string {
	switch k {
	case prometheus.CounterValue:
		return "counter"
	case prometheus.GaugeValue:
		return "gauge"
	default:
		return "untyped"
	}
}

// header writes the HELP and TYPE lines of family name, once per run of its samples.
func (t *textWriter) header(name, help, typ string) {
	if t.cur == name {
		return
	}
	t.cur = name
	b := append(t.b[:0], "# HELP "...)
	b = append(b, name...)
	b = append(b, ' ')
	b = appendEscaped(b, help, false)
	b = append(b, "\n# TYPE "...)
	b = append(b, name...)
	b = append(b, ' ')
	b = append(b, typ...)
	b = append(b, '\n')
	t.write(b)
}

// sample writes one series: name{names[i]="values[i]",...} v.
func (t *textWriter) sample(name string, names, values []string, v float64) {
	b := append(t.b[:0], name...)
	if len(names) > 0 {
		b = append(b, '{')
		for i, n := range names {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, n...)
			b = append(b, '=', '"')
			b = appendEscaped(b, values[i], true)
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	b = append(b, ' ')
	b = appendValue(b, v)
	b = append(b, '\n')
	t.write(b)
}

func (t *textWriter) write(b []byte) {
	t.b = b[:0]
	if t.err == nil {
		_, t.err = t.w.Write(b)
	}
}

// flush writes what is buffered and returns the first error.
func (t *textWriter) flush() error {
	if t.err == nil {
		t.err = t.w.Flush()
	}
	return t.err
}

// appendEscaped escapes a HELP text (backslash, newline) or a label value (also '"').
func appendEscaped(b []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, '\\', '\\')
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '"' && quote:
			b = append(b, '\\', '"')
		default:
			b = append(b, c)
		}
	}
	return b
}

// appendValue writes a sample value: whole numbers as integers (as RabbitMQ prints them),
// others in Go's shortest form, and Prometheus's spellings of infinities and NaN.
func appendValue(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case v == math.Trunc(v) && math.Abs(v) < 1<<53:
		return strconv.AppendInt(b, int64(v), 10)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}
