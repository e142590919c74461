package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestThousands(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999.4: "999", 1000: "1,000", 1234567.8: "1,234,568", -12345: "-12,345"} {
		if got := thousands(v); got != want {
			t.Errorf("thousands(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestTable(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, s *summary) string {
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("some log line\n")
		if err := s.writeJSON(f); err != nil {
			t.Fatal(err)
		}
		f.Close()
		return p
	}
	b := &brokerSummary{PID: "1", CPU: 2, Cores: 0.5, MsgsPerCore: 50000, PeakRSS: 100.4, VmHWM: 120, HWMReset: true}
	ack := write("01-ack.json", &summary{Label: "transient 1→1, acks", Producers: 1, Consumers: 1, Queues: 1,
		PublishRate: 30000, ConsumeRate: 25000.4, Latency: &latencySummary{P50: 1.234, P99: 12.34, P999: 123.4}, Broker: b})
	diskMiB, diskKB, noDisk := 1843.2, 2.64, 0.2
	b.DiskWrite, b.DiskPerMsg = &noDisk, &noDisk // a transient row: under a MiB, no note
	confirm := write("02-confirm.json", &summary{Producers: 4, Confirm: 64, Queues: 1, Published: 1000, ConfirmRate: 9000, PublishRate: 9100,
		Broker: &brokerSummary{Cores: 0.6, MsgsPerCore: 15000, PeakRSS: 50, VmHWM: 3000, DiskWrite: &diskMiB, DiskPerMsg: &diskKB}})
	idle := write("03-idle.json", &summary{Label: "idle", Queues: 1, Broker: b, Idle: &idleSummary{Requested: 10000, Opened: 10000, StillOpen: 10000, OpenTime: 3.5, Heartbeat: 60,
		ClientRSS: 400, Broker: &idleBroker{RSSBefore: 20, RSSEnd: 420, KiBPerConn: 41}}})
	failed := setupFailed(&config{Label: "refused", URL: "amqp://u:secret@127.0.0.1:1/", Producers: 1, Consumers: 1})
	failed.Error = "setup: connect: connection refused"
	refused := write("04-refused.json", failed)
	bad := filepath.Join(dir, "05-missing.json")

	var out, errOut strings.Builder
	if status := tableMain([]string{ack, confirm, idle, refused, bad}, &out, &errOut); status != 1 {
		t.Fatalf("status %d with a missing file", status)
	}
	if !strings.Contains(errOut.String(), "05-missing.json") {
		t.Fatalf("stderr %q", errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d lines:\n%s", len(lines), out.String())
	}
	for i, want := range []string{
		"| transient 1→1, acks | 25,000 | 0.50 | 50,000 | 1.23 / 12.3 / 123 | 100 / 120 | published 30,000 msg/s |",
		"| 02-confirm | 9,000 | 0.60 | 15,000 | – | 50 / 3,000 | published 1,000 msgs; disk 1,843 MiB, 2.6 KB/msg; VmHWM not reset for this run |",
		"| idle | – | 0.50 | 50,000 | – | 100 / 120 | 10,000 of 10,000 connections opened in 3.5 s, heartbeat 60 s, 10,000 open at the end; broker RSS 20 → 420 MiB (41.0 KiB per connection); client RSS 400 MiB |",
		"| refused | – | – | – | – | – | ERROR: setup: connect: connection refused |",
	} {
		if lines[i+2] != want {
			t.Errorf("row %d:\n got %s\nwant %s", i, lines[i+2], want)
		}
	}
	if status := tableMain(nil, &out, &errOut); status != 2 {
		t.Fatalf("no files: status %d", status)
	}
}
