package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildTools compiles cmd/warren and this harness into a temporary directory.
func buildTools(t *testing.T) (warren, jepsen string) {
	t.Helper()
	dir := t.TempDir()
	warren, jepsen = filepath.Join(dir, "warren"), filepath.Join(dir, "warren-jepsen")
	for _, b := range [][2]string{{warren, "../warren"}, {jepsen, "."}} {
		if out, err := exec.Command("go", "build", "-o", b[0], b[1]).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", b[1], err, out)
		}
	}
	return warren, jepsen
}

// runJepsen runs the harness and returns its exit status, its summary and its result file.
func runJepsen(t *testing.T, jepsen string, args ...string) (int, string, Report) {
	code, summary, rep, _ := runJepsenHistory(t, jepsen, args...)
	return code, summary, rep
}

// runJepsenHistory is runJepsen with the run's history.
func runJepsenHistory(t *testing.T, jepsen string, args ...string) (int, string, Report, []Event) {
	t.Helper()
	out, hist := filepath.Join(t.TempDir(), "result.json"), filepath.Join(t.TempDir(), "history.json")
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(jepsen, append(args, "--out", out, "--history", hist, "--work", t.TempDir())...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("warren-jepsen: %v", err)
	}
	t.Logf("warren-jepsen %s: exit %d\n%s", strings.Join(args, " "), code, stdout.String())
	var rep Report
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("no result file (exit %d): %v\n%s", code, err, stderr.String())
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	var events []Event
	if b, err = os.ReadFile(hist); err != nil {
		t.Fatalf("no history file: %v", err)
	}
	if err := json.Unmarshal(b, &events); err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), rep, events
}

// shortRun is a quick single-broker run: two publishers outpacing two consumers (a backlog
// is on disk when the faults hit), faults of 0.3 to 1 s.
var shortRun = []string{"--nodes", "1", "--publishers", "2", "--consumers", "2", "--rate", "50", "--consume-rate", "20",
	"--hold-min", "300ms", "--hold-max", "1s", "--gap-min", "300ms", "--gap-max", "800ms"}

// TestSingleBrokerUnderFaults: one real broker, a durable classic queue with persistent
// messages, publishers with confirms and consumers with manual acks, while the nemesis kills
// it with SIGKILL and restarts it and pauses it with SIGSTOP/SIGCONT, 12 times. Every
// confirmed message is delivered at least once, nothing unpublished is delivered, the broker
// never exits on its own, and after the drain its API reports the queue empty.
func TestSingleBrokerUnderFaults(t *testing.T) {
	warren, jepsen := buildTools(t)
	code, summary, rep, events := runJepsenHistory(t, jepsen, append([]string{"--warren", warren, "--faults", "12", "--seed", "18"}, shortRun...)...)
	if code != 0 || !rep.OK || !strings.Contains(summary, "result: PASS") {
		t.Fatalf("the run failed (exit %d): lost %v, phantoms %v, crashes %v, disagreements %v, problems %v",
			code, rep.Result.Lost, rep.Result.Phantoms, rep.Crashes, rep.Disagreements, rep.Problems)
	}
	if len(rep.Faults) != 12 || rep.FaultsByKind[faultKill] == 0 || rep.FaultsByKind[faultPause] == 0 {
		t.Fatalf("faults = %v, want 12 with kills and pauses", rep.FaultsByKind)
	}
	for _, f := range rep.Faults {
		if f.Err != "" {
			t.Errorf("fault %+v failed", f)
		}
	}
	r := rep.Result
	if r.Confirmed == 0 || r.Delivered < r.Confirmed {
		t.Fatalf("result = %+v: nothing confirmed, or fewer distinct deliveries than confirms", r)
	}
	if st, ok := rep.States["n1"]; !ok || st.Messages != 0 || len(st.Queues) == 0 {
		t.Fatalf("final state = %+v, want the drained queue listed with 0 messages", rep.States)
	}
	if n := survivors(events, rep.Faults); n == 0 {
		t.Fatal("no message confirmed before a kill -9 was delivered after the restart: the kills hit an empty queue")
	} else {
		t.Logf("%d messages confirmed before a kill -9 were first delivered after the restart", n)
	}
}

// survivors counts the messages confirmed before a kill and first delivered after the
// restart: those the broker kept on disk through the kill.
func survivors(events []Event, faults []Fault) int {
	acked, first := map[string]int64{}, map[string]int64{}
	for _, e := range events {
		switch e.Op {
		case opAck:
			acked[e.ID] = e.MS
		case opDeliver:
			if _, ok := first[e.ID]; !ok {
				first[e.ID] = e.MS
			}
		}
	}
	n := 0
	for id, at := range acked {
		for _, f := range faults {
			if f.Kind == faultKill && at < f.StartMS && first[id] > f.EndMS {
				n++
				break
			}
		}
	}
	return n
}

// TestHarnessCatchesLostMessages: the same run against a broker that forgets its data dir
// when restarted (a wrapper around the real one) fails with the confirmed messages it had
// queued reported lost: the harness sees a loss when there is one.
func TestHarnessCatchesLostMessages(t *testing.T) {
	warren, jepsen := buildTools(t)
	forgetful := filepath.Join(t.TempDir(), "forgetful-warren")
	script := "#!/bin/sh\n# warren that loses its data dir on each restart\nprev=\nfor a in \"$@\"; do\n" +
		"  [ \"$prev\" = --data-dir ] && d=$a\n  prev=$a\ndone\n" +
		"[ -e \"$d.ran\" ] && rm -rf \"$d\"\ntouch \"$d.ran\"\nexec " + warren + " \"$@\"\n"
	if err := os.WriteFile(forgetful, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	code, summary, rep := runJepsen(t, jepsen, append([]string{"--warren", forgetful, "--faults", "2", "--kinds", "kill", "--seed", "18"}, shortRun...)...)
	if code != 1 || rep.OK || len(rep.Result.Lost) == 0 || !strings.Contains(summary, "result: FAIL") {
		t.Fatalf("exit %d, lost %d: want exit 1 with lost messages reported", code, len(rep.Result.Lost))
	}
}
