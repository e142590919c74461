package conformance

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// restartWarning is the message of the warning a reload logs for settings that wait for a
// restart.
const restartWarning = "take effect only at a restart"

// testConfigReloadRestart changes settings that a reload cannot apply (the listener, the
// heartbeat) next to ones it does (the definitions, disk-free-limit): each reload, by SIGHUP or
// by command, applies the definitions and names exactly the others in one warning, and the
// broker keeps running with the old listener.
func testConfigReloadRestart(t *testing.T, bin string) {
	dir, addr := t.TempDir(), freeAddr(t)
	writeCfgFile(t, dir, "warren.yaml", simpleConfig(addr))
	writeCfgFile(t, dir, "defs.yaml", "queues:\n  - {name: rr.a}\n")
	b := startCfgBrokerIn(t, bin, dir, addr)

	writeCfgFile(t, dir, "warren.yaml", simpleConfig(freeAddr(t))+"heartbeat: 30s\ndisk-free-limit: 1GiB\n")
	writeCfgFile(t, dir, "defs.yaml", "queues:\n  - {name: rr.a}\n  - {name: rr.b}\n")

	mark := b.log.mark()
	b.signal(syscall.SIGHUP)
	if _, ok := b.log.waitFor(mark, timeout, func(s string) bool { return strings.Contains(s, "reloaded on SIGHUP") }); !ok {
		t.Fatalf("no \"reloaded on SIGHUP\" in the log:\n%s", b.log.dump())
	}
	wantRestartWarning(t, b, mark, "SIGHUP")
	conn := b.dial("guest", "guest", "/") // the old listener still serves
	if _, ok := passiveQueue(t, conn, "rr.b"); !ok {
		t.Errorf("queue rr.b, added to defs.yaml, does not exist after the reload")
	}

	mark = b.log.mark()
	r := runWarren(t, bin, "", "", "config", "reload", "--control-socket", filepath.Join(dir, "data", "warren.sock"))
	if r.code != 0 || !strings.Contains(r.stdout, "not applied until a restart: listeners, heartbeat\n") {
		t.Errorf("warren config reload: want exit status 0 and the settings that wait for a restart:\n%v", r)
	}
	// The command's reply is sent after the warning is logged (and it is in the log by now).
	wantRestartWarning(t, b, mark, "warren config reload")
}

// wantRestartWarning checks that the log has, after mark, exactly one restart warning, naming
// listeners and heartbeat and nothing that a reload applies.
func wantRestartWarning(t *testing.T, b *cfgBroker, mark int, what string) {
	t.Helper()
	// The broker logs it before it answers, but the test reads the broker's log through a
	// pipe: the line may not have been read yet (CI saw it).
	b.log.waitFor(mark, timeout, func(s string) bool { return strings.Contains(s, restartWarning) })
	b.log.mu.Lock()
	var warnings []string
	for _, l := range b.log.lines[mark:] {
		if s := logText(l); strings.Contains(s, restartWarning) {
			warnings = append(warnings, s)
		}
	}
	b.log.mu.Unlock()
	if len(warnings) != 1 {
		t.Fatalf("after %s: %d log lines with %q, want 1:\n%s", what, len(warnings), restartWarning, b.log.dump())
	}
	if w := warnings[0]; !strings.HasPrefix(w, "warn ") || !strings.Contains(w, "settings=[listeners heartbeat]") {
		t.Errorf("after %s: the warning is %q, want level warn and settings=[listeners heartbeat]", what, w)
	}
}
