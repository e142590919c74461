package configs

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration read from YAML as a Go duration string ("30s", "1m30s") or a
// bare integer of seconds.
type Duration time.Duration

// ParseDuration reads a Go duration string; negative durations are refused.
func ParseDuration(s string) (Duration, error) {
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q: %w", s, err)
	}
	if v < 0 {
		return 0, fmt.Errorf("duration %q is negative", s)
	}
	return Duration(v), nil
}

// String is the Go form, "1m30s".
func (d Duration) String() string { return time.Duration(d).String() }

// ByteSize is a number of bytes, read from YAML as an integer or as a number with a unit:
// decimal kB, MB, GB, TB (powers of 1000) or binary KiB, MiB, GiB, TiB (powers of 1024).
type ByteSize int64

// byteUnits in the order error messages list them.
var byteUnits = []struct {
	name string
	mult int64
}{
	{"B", 1}, {"kB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
}

var sizeRE = regexp.MustCompile(`^(-?[0-9]+) ?([A-Za-z]*)$`)

// ParseByteSize reads "1048576", "64MiB", "500MB", "2kB" or "64 MiB". Units are
// case-sensitive, since "mb" could mean either.
func ParseByteSize(s string) (ByteSize, error) {
	m := sizeRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("size %q is not an integer with an optional unit, such as 64MiB", s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	if m[2] == "" {
		return ByteSize(n), nil
	}
	names := make([]string, len(byteUnits))
	for i, u := range byteUnits {
		names[i] = u.name
		if u.name != m[2] {
			continue
		}
		if n > math.MaxInt64/u.mult || n < math.MinInt64/u.mult {
			return 0, fmt.Errorf("size %q is too large", s)
		}
		return ByteSize(n * u.mult), nil
	}
	return 0, fmt.Errorf("size %q has unknown unit %q; expected one of %s", s, m[2], strings.Join(names, ", "))
}

// String is the size in the largest binary unit that divides it exactly ("64MiB"), or in
// bytes ("1000").
func (b ByteSize) String() string {
	for _, u := range []struct {
		name string
		mult int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if b != 0 && int64(b)%u.mult == 0 {
			return strconv.FormatInt(int64(b)/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10)
}
