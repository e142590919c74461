package configs

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestEverySettingIsCompared: a setting added to the file without a place in settings()
// would never be reported as waiting for a restart.
func TestEverySettingIsCompared(t *testing.T) {
	b := DefaultBroker()
	s := b.settings()
	for _, k := range brokerKeys {
		if _, ok := s[k]; !ok {
			t.Errorf("setting %q is missing from Broker.settings; add it (and mark it in reloadable if a reload applies it)", k)
		}
	}
	if len(s) != len(brokerKeys) {
		t.Errorf("Broker.settings has %d settings, the file %d", len(s), len(brokerKeys))
	}
}

// TestNeedRestart rewrites one configuration file as an operator would before a reload and
// checks which changes are reported as waiting for a restart.
func TestNeedRestart(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"a.yaml", "b.yaml"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("queues: []\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	load := func(text string) *Broker {
		t.Helper()
		p := filepath.Join(dir, "warren.yaml")
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		b, err := LoadBroker(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	const base = "listeners:\n  - address: 127.0.0.1:5672\nheartbeat: 60s\ndefinitions: [a.yaml]\n"
	running := load(base)
	for _, c := range []struct {
		name string
		next string
		want []string
	}{
		{"unchanged", base, nil},
		{"a comment moves the listener down a line", "# moved\n" + base, nil},
		{"definitions are reloaded", "listeners:\n  - address: 127.0.0.1:5672\nheartbeat: 60s\ndefinitions: [a.yaml, b.yaml]\n", nil},
		{"disk-free-limit is reloaded", base + "disk-free-limit: 1GiB\n", nil},
		{"listener and heartbeat wait", "listeners:\n  - address: 127.0.0.1:5673\nheartbeat: 30s\ndefinitions: [a.yaml]\n", []string{"listeners", "heartbeat"}},
		{"nested values and the product wait", base + "limits: {max-connections: 10}\nproduct: {name: RabbitMQ}\nlog: {level: debug}\n", []string{"limits", "log", "product"}},
		{"data dir (and the socket in it) and flow control wait", base + "data-dir: other\nflow-control: false\n", []string{"data-dir", "control-socket", "flow-control"}},
	} {
		if got := NeedRestart(running, load(c.next)); !slices.Equal(got, c.want) {
			t.Errorf("%s: NeedRestart = %q, want %q", c.name, got, c.want)
		}
	}
}
