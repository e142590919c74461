package configs

import (
	"bytes"
	"testing"
)

// FuzzParseDefinitions: no input panics, and whatever parses writes out as YAML that
// parses back to definitions that write the same bytes.
func FuzzParseDefinitions(f *testing.F) {
	f.Add([]byte(everything))
	f.Add([]byte("queues: [{name: a, arguments: {x: [1, {b: 2.5}], x-message-ttl: 5s}}]\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("queues: [{<<: [{name: q}], durable: false}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		defs, err := ParseDefinitions("f.yaml", data)
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := defs.WriteYAML(&out); err != nil {
			t.Fatalf("parsed definitions do not write: %v", err)
		}
		back, err := ParseDefinitions("out.yaml", out.Bytes())
		if err != nil {
			t.Fatalf("written definitions do not parse: %v\n%s", err, out.String())
		}
		var again bytes.Buffer
		if err := back.WriteYAML(&again); err != nil || !bytes.Equal(again.Bytes(), out.Bytes()) {
			t.Fatalf("second write differs (%v):\n%s\nfirst:\n%s", err, again.String(), out.String())
		}
	})
}

// FuzzImportRabbitMQ: no JSON input panics.
func FuzzImportRabbitMQ(f *testing.F) {
	f.Add([]byte(export))
	f.Add([]byte(`{"policies": [{"name": "p", "pattern": "^(a|b)$", "definition": {"ha-mode": "all"}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ImportRabbitMQ("f.json", data)
	})
}

// FuzzRegexToGlob: a translation always compiles.
func FuzzRegexToGlob(f *testing.F) {
	for _, s := range []string{"^foo", `^a\.b$`, "^(a|b).*", "x.y", `\,`, "^(a,b|c)$"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, re string) {
		g, err := regexToGlob(re)
		if err != nil {
			return
		}
		if _, err := CompilePattern(g); err != nil {
			t.Fatalf("%q translates to %q, which does not compile: %v", re, g, err)
		}
	})
}
