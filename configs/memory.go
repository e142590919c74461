package configs

import (
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MemoryLimit is memory-limit: the memory alarm's threshold, in bytes or as a fraction of the
// memory the broker may use (the machine's, or its cgroup's limit), as RabbitMQ's
// vm_memory_high_watermark.absolute and .relative.
type MemoryLimit struct {
	Bytes    ByteSize // set when the limit is absolute
	Fraction float64  // set when it is relative (0 < Fraction <= 1)
}

// DefaultMemoryLimit is RabbitMQ 3.10's default high watermark: 0.4 of the memory available.
var DefaultMemoryLimit = MemoryLimit{Fraction: 0.4}

// ParseMemoryLimit reads a fraction ("0.4") or a size ("2GiB", "1073741824").
func ParseMemoryLimit(s string) (MemoryLimit, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, ".") {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f <= 0 || f > 1 {
			return MemoryLimit{}, fmt.Errorf("memory limit %q is neither a fraction in (0, 1] of the memory available nor a size such as 2GiB", s)
		}
		return MemoryLimit{Fraction: f}, nil
	}
	b, err := ParseByteSize(s)
	if err != nil {
		return MemoryLimit{}, fmt.Errorf("memory limit: %w (or give a fraction of the memory available, such as 0.4)", err)
	}
	if b < 1 {
		return MemoryLimit{}, fmt.Errorf("memory limit %q must be positive", s)
	}
	return MemoryLimit{Bytes: b}, nil
}

// Resolve returns the limit in bytes, given the memory available.
func (m MemoryLimit) Resolve(available uint64) int64 {
	if m.Bytes > 0 {
		return int64(m.Bytes)
	}
	return int64(m.Fraction * float64(available))
}

func (m MemoryLimit) String() string {
	if m.Bytes > 0 {
		return m.Bytes.String()
	}
	return strconv.FormatFloat(m.Fraction, 'f', -1, 64)
}

// memoryLimit decodes memory-limit.
func (d *decoder) memoryLimit(n *yaml.Node, path string) (MemoryLimit, bool) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float" && n.Tag != "!!str") {
		d.expected(n, path, "a fraction such as 0.4 or a size such as 2GiB")
		return MemoryLimit{}, false
	}
	v, err := ParseMemoryLimit(n.Value)
	if err != nil {
		d.errorf(n, path, "%v", err)
		return MemoryLimit{}, false
	}
	return v, true
}
