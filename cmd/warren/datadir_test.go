package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// exitTimeout bounds the wait for a broker that should refuse to start.
const exitTimeout = 30 * time.Second

// refusesDataDir runs the binary on dataDir and expects it to exit with a non-zero status and a
// "warren: " line on stderr that names dataDir and contains one of words (case-insensitive).
func refusesDataDir(t *testing.T, bin, dataDir string, words ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), exitTimeout)
	defer cancel()
	var stderr bytes.Buffer
	serving := false
	cmd := exec.CommandContext(ctx, bin, "--listen", "127.0.0.1:0", "--prometheus-listen", "127.0.0.1:0", "--management-listen", "127.0.0.1:0", "--data-dir", dataDir, "--log-level", "info")
	cmd.Stderr = &lineWriter{onLine: func(line string) {
		stderr.WriteString(line + "\n")
		if strings.Contains(line, "listening for AMQP 0-9-1") {
			serving = true // no need to wait for the timeout: it took the data dir
			cancel()
		}
	}}
	err := cmd.Run()
	if serving {
		t.Fatalf("broker on %s started serving, want it to refuse the data dir and exit; stderr:\n%s", dataDir, &stderr)
	}
	if ctx.Err() != nil {
		t.Fatalf("broker on %s still running after %v, want it to refuse the data dir and exit; stderr:\n%s", dataDir, exitTimeout, &stderr)
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() <= 0 {
		t.Fatalf("broker on %s: %v, want a non-zero exit status; stderr:\n%s", dataDir, err, &stderr)
	}
	var msg string
	for line := range strings.Lines(stderr.String()) {
		if strings.HasPrefix(line, "warren: ") {
			msg = strings.TrimSpace(line)
		}
	}
	if msg == "" {
		t.Fatalf("no line starting with \"warren: \" on stderr:\n%s", &stderr)
	}
	if !strings.Contains(msg, dataDir) {
		t.Errorf("%q does not name the data dir %s", msg, dataDir)
	}
	lower := strings.ToLower(msg)
	for _, w := range words {
		if strings.Contains(lower, w) {
			return
		}
	}
	t.Errorf("%q does not say what is wrong (want one of %q)", msg, words)
}

// TestBadDataDirFails: the broker refuses a data dir it cannot use, with an error that names the
// dir and the problem, instead of crashing or running without persistence.
func TestBadDataDirFails(t *testing.T) {
	bin := buildBinary(t)
	t.Run("regular file", func(t *testing.T) { dataDirIsAFile(t, bin) })
	t.Run("corrupt MANIFEST", func(t *testing.T) { dataDirCorruptManifest(t, bin) })
	t.Run("in use by a running broker", func(t *testing.T) { dataDirInUse(t, bin) })
}

// dataDirIsAFile: --data-dir names a regular file.
func dataDirIsAFile(t *testing.T, bin string) {
	file := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(file, []byte("not a directory\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	refusesDataDir(t, bin, file, "not a directory", "is a file", "regular file", "not a dir")
}

// dataDirCorruptManifest: the dir's Badger MANIFEST is garbage. The broker leaves the file alone
// for someone to look at.
func dataDirCorruptManifest(t *testing.T, bin string) {
	dir := t.TempDir()
	garbage := make([]byte, 4096)
	_, _ = rand.Read(garbage)
	manifest := filepath.Join(dir, "MANIFEST")
	if err := os.WriteFile(manifest, garbage, 0o644); err != nil {
		t.Fatal(err)
	}
	refusesDataDir(t, bin, dir, "corrupt", "damaged", "manifest", "magic")
	if after, err := os.ReadFile(manifest); err != nil || !bytes.Equal(after, garbage) {
		t.Errorf("the broker changed or removed the corrupt MANIFEST (err %v)", err)
	}
}

// dataDirInUse: a second broker on a data dir that a running broker holds exits with an error
// saying so, and the first one keeps serving.
func dataDirInUse(t *testing.T, bin string) {
	dir := t.TempDir()
	addr := freeAddr(t)
	first := exec.Command(bin, "--listen", addr, "--prometheus-listen", "127.0.0.1:0", "--management-listen", "127.0.0.1:0", "--data-dir", dir, "--log-level", "info")
	lines := make(chan string, 100)
	first.Stderr = &lineWriter{onLine: func(line string) {
		select {
		case lines <- line:
		default: // nobody is reading any more
		}
	}}
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- first.Wait()
		close(lines)
	}()
	t.Cleanup(func() {
		_ = first.Process.Kill()
		<-done
	})
	waitForLine(t, lines, "listening for AMQP 0-9-1")

	refusesDataDir(t, bin, dir, "in use", "locked", "lock")

	// The first broker still serves: a durable queue takes and gives back a persistent message.
	conn, err := amqp.DialConfig("amqp://guest:guest@"+addr+"/", amqp.Config{Dial: amqp.DefaultDial(10 * time.Second)})
	if err != nil {
		t.Fatalf("dial the first broker after the second one failed: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("still-serving", true, false, false, false, nil); err != nil {
		t.Fatalf("declare a durable queue on the first broker: %v", err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", "still-serving", false, false,
		amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte("hello")})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := dc.WaitContext(ctx); err != nil || !ok {
		t.Fatalf("confirm from the first broker: ack=%v err=%v", ok, err)
	}
	d, ok, err := ch.Get("still-serving", true)
	if err != nil || !ok || string(d.Body) != "hello" {
		t.Fatalf("basic.get from the first broker: ok=%v body=%q err=%v", ok, d.Body, err)
	}

	// And it still shuts down cleanly.
	if err := first.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		done <- err // for the cleanup
		if err != nil {
			t.Errorf("first broker exit after SIGTERM: %v, want status 0", err)
		}
	case <-time.After(exitTimeout):
		t.Fatalf("first broker still running %v after SIGTERM", exitTimeout)
	}
}

// lineWriter is a process's stderr: it hands each complete line to onLine. os/exec calls Write
// from one goroutine, and Wait returns only after the last call.
type lineWriter struct {
	onLine  func(string)
	partial []byte
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.partial = append(w.partial, b...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			return len(b), nil
		}
		w.onLine(string(w.partial[:i]))
		w.partial = w.partial[i+1:]
	}
}
