package configs

import (
	"testing"
	"time"
)

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{
		"1048576": 1048576, "64MiB": 64 << 20, "1GiB": 1 << 30, "500MB": 500e6, "2kB": 2000,
		"3KiB": 3072, "7B": 7, "2TiB": 2 << 40, "5GB": 5e9, "64 MiB": 64 << 20, "-1": -1,
	} {
		if got, err := ParseByteSize(in); err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"5mb":        `size "5mb" has unknown unit "mb"; expected one of B, kB, MB, GB, TB, KiB, MiB, GiB, TiB`,
		"1.5GiB":     `size "1.5GiB" is not an integer with an optional unit, such as 64MiB`,
		"lots":       `size "lots" is not an integer with an optional unit, such as 64MiB`,
		"9999999TiB": `size "9999999TiB" is too large`,
	} {
		if _, err := ParseByteSize(in); err == nil || err.Error() != want {
			t.Errorf("ParseByteSize(%q) error %v; want %s", in, err, want)
		}
	}
}

func TestByteSizeString(t *testing.T) {
	for b, want := range map[ByteSize]string{64 << 20: "64MiB", 1 << 30: "1GiB", 1000: "1000", 0: "0", 1536: "3KiB" /* 1.5KiB is not whole */} {
		if b == 1536 {
			want = "1536"
		}
		if got := b.String(); got != want {
			t.Errorf("%d.String() = %q; want %q", int64(b), got, want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	if d, err := ParseDuration("1m30s"); err != nil || time.Duration(d) != 90*time.Second {
		t.Errorf("1m30s = %v, %v", d, err)
	}
	for in, want := range map[string]string{
		"5 mins": `duration "5 mins": time: unknown unit " mins" in duration "5 mins"`,
		"-5s":    `duration "-5s" is negative`,
	} {
		if _, err := ParseDuration(in); err == nil || err.Error() != want {
			t.Errorf("ParseDuration(%q) error %v; want %s", in, err, want)
		}
	}
}
