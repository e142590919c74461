package main

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// TestCtlTableOnATerminal: with stdout a terminal (a pseudo-terminal here) and no --format,
// list prints an aligned table with a header, as rabbitmqctl does for a person.
func TestCtlTableOnATerminal(t *testing.T) {
	api := newCtlFakeAPI(t, ctlFakeAnswers{"GET /api/queues": {200, ctlFakeQueues}}, false)
	ptm, tty := openPTY(t)
	var errb bytes.Buffer
	if err := ctl([]string{"--url", api.URL, "list", "queues"}, strings.NewReader(""), tty, &errb); err != nil {
		t.Fatalf("list queues: %v: %s", err, errb.String())
	}
	want := "name       messages\norders     3\ntab\\there  0\n"
	var got []byte
	buf := make([]byte, 4096)
	deadline := time.Now().Add(10 * time.Second)
	for !bytes.Equal(bytes.ReplaceAll(got, []byte("\r\n"), []byte("\n")), []byte(want)) && time.Now().Before(deadline) {
		_ = ptm.SetReadDeadline(deadline)
		n, err := ptm.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
	}
	if s := strings.ReplaceAll(string(got), "\r\n", "\n"); s != want {
		t.Errorf("on a terminal:\n got %q\nwant %q (a table with a header)", s, want)
	}
}
