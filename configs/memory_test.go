package configs

import (
	"strings"
	"testing"
)

func TestParseMemoryLimit(t *testing.T) {
	for _, c := range []struct {
		in   string
		want MemoryLimit
		err  string
	}{
		{in: "0.4", want: MemoryLimit{Fraction: 0.4}},
		{in: "1.0", want: MemoryLimit{Fraction: 1}},
		{in: "2GiB", want: MemoryLimit{Bytes: 2 << 30}},
		{in: "1073741824", want: MemoryLimit{Bytes: 1 << 30}},
		{in: "1.5", err: "neither a fraction"},
		{in: "0.0", err: "neither a fraction"},
		{in: "0", err: "must be positive"},
		{in: "lots", err: "not an integer"},
	} {
		got, err := ParseMemoryLimit(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want one containing %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: got %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	if got := (MemoryLimit{Fraction: 0.4}).Resolve(1000); got != 400 {
		t.Errorf("0.4 of 1000 bytes resolved to %d", got)
	}
	if got := (MemoryLimit{Bytes: 5}).Resolve(1000); got != 5 {
		t.Errorf("5 bytes resolved to %d", got)
	}
}

func TestMemoryLimitInFile(t *testing.T) {
	b, err := ParseBroker("warren.yaml", []byte("memory-limit: 0.25\n"))
	if err != nil || b.MemoryLimit != (MemoryLimit{Fraction: 0.25}) {
		t.Errorf("got %+v, %v", b.MemoryLimit, err)
	}
	_, err = ParseBroker("warren.yaml", []byte("memory-limit: 7\n"))
	if err != nil {
		t.Errorf("7 bytes refused: %v", err)
	}
	_, err = ParseBroker("warren.yaml", []byte("memory-limit: [1]\n"))
	if err == nil || !strings.Contains(err.Error(), "warren.yaml:1:15: memory-limit") {
		t.Errorf("a list as memory-limit: %v", err)
	}
}
