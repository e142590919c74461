package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/warrenmq/warren/configs"
)

// openPTY returns a new pseudo-terminal's controlling side and its terminal, which starts in
// the kernel's default mode: canonical, with echo on.
func openPTY(t *testing.T) (ptm, tty *os.File) {
	t.Helper()
	// Non-blocking, so that os.File's read deadlines work on it.
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	ptm = os.NewFile(uintptr(fd), "/dev/ptmx")
	t.Cleanup(func() { _ = ptm.Close() })
	if err := unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock the pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(ptm.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open the pty's terminal: %v", err)
	}
	t.Cleanup(func() { _ = tty.Close() })
	return ptm, tty
}

// waitEchoOff waits until the terminal's echo is off: a person types after the prompt, once
// warren reads with echo off; typing earlier would show the password whatever warren does.
func waitEchoOff(t *testing.T, ptm *os.File, shown fmt.Stringer) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tio, err := unix.IoctlGetTermios(int(ptm.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatalf("read the terminal's mode: %v", err)
		}
		if tio.Lflag&unix.ECHO == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the terminal still echoes 10s after the prompt; it shows %q", shown.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPasswdOnATerminalDoesNotEcho runs `warren passwd` with its stdin and stderr on a
// pseudo-terminal, types the password at its prompts and checks that the terminal never shows
// it, while stdout gets a hash of it. Reading the line from a pipe is covered by the
// conformance suite's Passwd test.
func TestPasswdOnATerminalDoesNotEcho(t *testing.T) {
	bin := buildBinary(t)
	const password = "tty s3cret"
	for _, c := range []struct {
		name    string
		typed   []string
		wantErr string // on the terminal; "" for success
	}{
		{"twice the same", []string{password, password}, ""},
		{"two different", []string{password, password + "x"}, "do not match"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ptm, tty := openPTY(t)
			cmd := exec.Command(bin, "passwd")
			var stdout bytes.Buffer
			cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, &stdout, tty
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			_ = tty.Close() // the child holds it now; EIO on ptm once it exits
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()

			// Type each line once its prompt is on the screen and echo is off.
			var shown strings.Builder
			pending := []string{"Password: ", "Password (again): "}
			typed := c.typed
			buf := make([]byte, 256)
			for len(pending) > 0 {
				if err := ptm.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
					t.Fatal(err)
				}
				n, err := ptm.Read(buf)
				shown.Write(buf[:n])
				if err != nil {
					t.Fatalf("waiting for %q on the terminal: %v; it shows %q", pending[0], err, shown.String())
				}
				if strings.HasSuffix(shown.String(), pending[0]) {
					pending = pending[1:]
					waitEchoOff(t, ptm, &shown)
					if _, err := ptm.WriteString(typed[0] + "\n"); err != nil {
						t.Fatal(err)
					}
					typed = typed[1:]
				}
			}
			_ = ptm.SetReadDeadline(time.Now().Add(20 * time.Second))
			for {
				n, err := ptm.Read(buf)
				shown.Write(buf[:n])
				if err != nil {
					break // EIO: warren has exited and closed the terminal
				}
			}
			var err error
			select {
			case err = <-exited:
			case <-time.After(20 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatalf("warren passwd did not exit; the terminal shows %q", shown.String())
			}

			if strings.Contains(shown.String(), "s3cret") {
				t.Errorf("the terminal shows the password: %q", shown.String())
			}
			if c.wantErr != "" {
				var exit *exec.ExitError
				if !errors.As(err, &exit) || !strings.Contains(shown.String(), c.wantErr) {
					t.Errorf("exit %v, terminal %q; want a failure saying %q", err, shown.String(), c.wantErr)
				}
				if stdout.Len() > 0 {
					t.Errorf("stdout %q after a failure, want nothing", stdout.String())
				}
				return
			}
			if err != nil {
				t.Fatalf("warren passwd: %v; the terminal shows %q", err, shown.String())
			}
			u := configs.User{PasswordHash: strings.TrimSpace(stdout.String())}
			if !u.CheckPassword(password) {
				t.Errorf("stdout %q is not a hash of the typed password", stdout.String())
			}
		})
	}
}
