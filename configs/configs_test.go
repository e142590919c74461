package configs

import (
	"os"
	"path/filepath"
	"testing"
)

// TestExampleConfigsLoad: every file in configs/ loads, and the definitions files load
// together, as warren.yaml's definitions glob loads them.
func TestExampleConfigsLoad(t *testing.T) {
	b, err := LoadBroker("./warren.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultBroker()
	want.File, want.DataDir = b.File, filepath.Join(".", "data")
	want.Definitions = b.Definitions
	if b.DataDir != want.DataDir || len(b.Listeners) != 1 || b.Listeners[0].Address != ":5672" ||
		b.QueueMemory != want.QueueMemory || b.DiskFreeLimit != want.DiskFreeLimit || b.Limits != want.Limits ||
		b.Heartbeat != want.Heartbeat || b.HandshakeTimeout != want.HandshakeTimeout || b.WriteTimeout != want.WriteTimeout || b.Log != want.Log ||
		len(b.LoopbackUsers) != 1 || b.LoopbackUsers[0] != "guest" || b.ControlSocket != "" {
		t.Errorf("configs/warren.yaml is not all defaults: %+v", b)
	}
	files, err := filepath.Glob("./definitions/*.yaml")
	if err != nil || len(files) < 4 {
		t.Fatalf("definitions files %v, %v", files, err)
	}
	if len(b.Definitions) != len(files) {
		t.Errorf("warren.yaml loads %v, want %v", b.Definitions, files)
	}
	for _, f := range files {
		if _, err := LoadDefinitions(f); err != nil {
			t.Errorf("%s alone: %v", f, err)
		}
	}
	defs, err := LoadDefinitions(b.Definitions...)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range defs.Users {
		if pw := map[string]string{"app": "change-me", "guest": "guest"}[u.Name]; !u.CheckPassword(pw) {
			t.Errorf("user %s's hash is not of the password the comment names (%q)", u.Name, pw)
		}
	}
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if ext := filepath.Ext(e.Name()); !e.IsDir() && e.Name() != "warren.yaml" && ext != ".go" && ext != ".md" {
			t.Errorf("configs/%s is not loaded by this test", e.Name())
		}
	}
}
