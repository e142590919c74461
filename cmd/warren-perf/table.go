package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// tableMain is "warren-perf table FILE...": it reads --json summaries, one per file, and
// prints them as a markdown table, one row per file in the order given. It returns the
// exit status.
func tableMain(args []string, out, errOut io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(errOut, "usage: warren-perf table SUMMARY.json...\n\nPrints the --json summaries of warren-perf runs as one markdown table, a row per file.")
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	var rows []*summary
	var names []string
	status := 0
	for _, path := range args {
		s, err := readSummary(path)
		if err != nil {
			fmt.Fprintln(errOut, "warren-perf table:", err)
			status = 1
			continue
		}
		rows = append(rows, s)
		names = append(names, strings.TrimSuffix(filepath.Base(path), ".json"))
	}
	writeTable(out, rows, names)
	return status
}

// readSummary reads one summary: the last line of the file that holds a JSON object, so
// that a file with other output before it still reads.
func readSummary(path string) (*summary, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		line := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var s summary
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return &s, nil
	}
	return nil, fmt.Errorf("%s: no JSON summary", path)
}

// writeTable prints the rows; a row without a label is named from names.
func writeTable(w io.Writer, rows []*summary, names []string) {
	fmt.Fprintln(w, "| Test | msg/s | Broker cores | Msgs per broker core-s | Latency p50 / p99 / p99.9 ms | Broker RSS MiB, peak sampled / VmHWM | Notes |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---|---|---|")
	for i, s := range rows {
		label := s.Label
		if label == "" && i < len(names) {
			label = names[i]
		}
		if s.Elapsed == 0 && s.Error != "" {
			// The run failed before it started: nothing was measured.
			fmt.Fprintf(w, "| %s | – | – | – | – | – | %s |\n", cell(label), cell("ERROR: "+s.Error))
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", cell(label), throughput(s), cores(s), perCore(s), latency(s), rss(s), cell(notes(s)))
	}
}

// throughput is the rate the row stands for: deliveries when there are consumers (all of
// them, so a fanout counts every queue's copy), else confirms, else publishes.
func throughput(s *summary) string {
	switch {
	case s.Producers == 0 && s.Consumers == 0:
		return "–"
	case s.Consumers > 0:
		return thousands(s.ConsumeRate)
	case s.Confirm > 0:
		return thousands(s.ConfirmRate)
	}
	return thousands(s.PublishRate)
}

func cores(s *summary) string {
	if s.Broker == nil {
		return "–"
	}
	return fmt.Sprintf("%.2f", s.Broker.Cores)
}

func perCore(s *summary) string {
	if s.Broker == nil || s.Broker.MsgsPerCore == 0 {
		return "–"
	}
	return thousands(s.Broker.MsgsPerCore)
}

// latency is shown for runs that publish and consume; in a drain it would be the age of
// the backlog.
func latency(s *summary) string {
	l := s.Latency
	if l == nil || s.Producers == 0 {
		return "–"
	}
	return fmt.Sprintf("%s / %s / %s", msCell(l.P50), msCell(l.P99), msCell(l.P999))
}

func msCell(v float64) string {
	switch {
	case v < 10:
		return fmt.Sprintf("%.2f", v)
	case v < 100:
		return fmt.Sprintf("%.1f", v)
	}
	return thousands(v)
}

func rss(s *summary) string {
	if s.Broker == nil {
		return "–"
	}
	return fmt.Sprintf("%s / %s", thousands(s.Broker.PeakRSS), thousands(s.Broker.VmHWM))
}

func notes(s *summary) string {
	var n []string
	if s.Producers > 0 && s.Consumers > 0 {
		n = append(n, "published "+thousands(s.PublishRate)+" msg/s")
	}
	if s.Producers == 0 && s.Consumers > 0 {
		n = append(n, "drained "+thousands(float64(s.Consumed))+" msgs")
	}
	if s.Producers > 0 && s.Consumers == 0 {
		n = append(n, "published "+thousands(float64(s.Published))+" msgs")
	}
	if s.Exchange != "" && s.ExchangeType != "direct" {
		e := s.ExchangeType
		if s.Queues > 1 {
			e += " to " + strconv.Itoa(s.Queues) + " queues"
		}
		if s.TopicBindings > 0 {
			e += fmt.Sprintf(", %s bindings (bound in %.1f s)", thousands(float64(s.TopicBindings)), s.BindTime)
		}
		n = append(n, e)
	}
	if s.Nacked > 0 {
		n = append(n, thousands(float64(s.Nacked))+" nacked")
	}
	if b := s.Broker; b != nil && b.DiskWrite != nil && b.DiskPerMsg != nil && *b.DiskWrite >= 1 {
		// Transient rows write next to nothing: only a MiB or more is worth a note.
		n = append(n, fmt.Sprintf("disk %s MiB, %.1f KB/msg", thousands(*b.DiskWrite), *b.DiskPerMsg))
	}
	if d := s.Idle; d != nil {
		m := fmt.Sprintf("%s of %s connections opened in %.1f s, heartbeat %.0f s, %s open at the end",
			thousands(float64(d.Opened)), thousands(float64(d.Requested)), d.OpenTime, d.Heartbeat, thousands(float64(d.StillOpen)))
		if b := d.Broker; b != nil {
			m += fmt.Sprintf("; broker RSS %s → %s MiB (%.1f KiB per connection)", thousands(b.RSSBefore), thousands(b.RSSEnd), b.KiBPerConn)
		}
		m += fmt.Sprintf("; client RSS %s MiB", thousands(d.ClientRSS))
		if d.FirstError != "" {
			m += fmt.Sprintf("; %d failed, first: %s", d.Failed, d.FirstError)
		}
		n = append(n, m)
	}
	if s.Broker != nil && !s.Broker.HWMReset {
		n = append(n, "VmHWM not reset for this run")
	}
	if s.Error != "" {
		n = append(n, "ERROR: "+s.Error)
	}
	return strings.Join(n, "; ")
}

// cell keeps a value from breaking the table.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

// thousands formats v rounded to an integer, with commas: 12345.6 → "12,346".
func thousands(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	n := int64(math.Round(v))
	neg := n < 0
	if neg {
		n = -n
	}
	d := strconv.FormatInt(n, 10)
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, r := range d {
		if i > 0 && (len(d)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}
