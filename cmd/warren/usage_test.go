package main

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// TestHelpAndBadFlagsExitStatus runs the real binary: -h and --help print the usage and exit
// 0, for the broker and for a subcommand with flags; a flag that does not exist, or a stray
// argument, exits 2 (as Go's flag.ExitOnError does) and says what was wrong.
func TestHelpAndBadFlagsExitStatus(t *testing.T) {
	bin := buildBinary(t)
	for _, c := range []struct {
		args       []string
		wantCode   int
		wantStderr []string
	}{
		{[]string{"--help"}, 0, []string{"Usage:", "warren passwd", "-data-dir", "-product-name"}},
		{[]string{"-h"}, 0, []string{"Usage:", "-listen"}},
		{[]string{"config", "reload", "--help"}, 0, []string{"-control-socket"}},
		{[]string{"passwd", "--help"}, 0, []string{"usage: warren passwd"}}, // not hashed as a password
		{[]string{"ctl", "--help"}, 0, []string{"Usage: warren ctl", "queues grow NODE all|even", "-queue-pattern"}},
		{[]string{"ctl", "queues", "grow", "n4", "some"}, 2, []string{`strategy "some": want all or even`}},
		{[]string{"--no-such-flag"}, 2, []string{"flag provided but not defined: -no-such-flag", "Usage:"}},
		{[]string{"--heartbeat"}, 2, []string{"flag needs an argument: -heartbeat"}},
		{[]string{"stray"}, 2, []string{`unexpected argument "stray"`}},
		{[]string{"config", "reload", "--bogus"}, 2, []string{"flag provided but not defined: -bogus"}},
	} {
		cmd := exec.Command(bin, c.args...)
		cmd.Dir = t.TempDir() // a broker that started anyway would make its data dir here
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatalf("warren %s: %v", strings.Join(c.args, " "), err)
		}
		if code != c.wantCode {
			t.Errorf("warren %s: exit status %d, want %d\nstderr:\n%s", strings.Join(c.args, " "), code, c.wantCode, stderr.String())
		}
		for _, want := range c.wantStderr {
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("warren %s: stderr does not contain %q:\n%s", strings.Join(c.args, " "), want, stderr.String())
			}
		}
		if stdout.Len() > 0 {
			t.Errorf("warren %s: stdout %q, want nothing", strings.Join(c.args, " "), stdout.String())
		}
		if strings.Count(stderr.String(), "Usage") > 1 {
			t.Errorf("warren %s: the usage is printed more than once:\n%s", strings.Join(c.args, " "), stderr.String())
		}
	}
}
