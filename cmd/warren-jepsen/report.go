package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"os"
	"sort"
	"strings"
)

// Report is a run's outcome, written by --out.
type Report struct {
	Seed         int64          `json:"seed"`
	Nodes        int            `json:"nodes"`
	Queue        string         `json:"queue"`
	QueueType    string         `json:"queue_type"`
	DurationMS   int64          `json:"duration_ms"`
	Faults       []Fault        `json:"faults"`
	FaultsByKind map[string]int `json:"faults_by_kind"`
	// Refused counts the cluster connections the partitions refused.
	Refused int    `json:"refused_connections"`
	Result  Result `json:"result"`
	// Crashes are nodes that exited without being killed; Disagreements what the nodes'
	// final states differ in; Problems faults that could not be undone, a cluster that did
	// not settle, a queue that could not be drained. Each is a violation.
	Crashes       []string             `json:"crashes"`
	Disagreements []string             `json:"disagreements"`
	Problems      []string             `json:"problems"`
	States        map[string]nodeState `json:"states"`
	OK            bool                 `json:"ok"`

	events []Event
}

func newRand(seed int64) *rand.Rand { return rand.New(rand.NewSource(seed)) }

// print writes the human summary.
func (r *Report) print(w io.Writer) {
	var kinds []string
	for k := range r.FaultsByKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var byKind []string
	for _, k := range kinds {
		byKind = append(byKind, fmt.Sprintf("%s %d", k, r.FaultsByKind[k]))
	}
	res := r.Result
	fmt.Fprintf(w, "warren-jepsen: %d node(s), %s queue %q, seed %d, %.0fs\n", r.Nodes, r.QueueType, r.Queue, r.Seed, float64(r.DurationMS)/1000)
	fmt.Fprintf(w, "faults: %d (%s)", len(r.Faults), strings.Join(byKind, ", "))
	if r.Nodes > 1 {
		fmt.Fprintf(w, "; %d connections refused by partitions", r.Refused)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "published %d: confirmed %d, nacked %d, returned %d, unconfirmed %d\n",
		res.Published, res.Confirmed, res.Nacked, res.Returned, res.Unconfirmed)
	fmt.Fprintf(w, "delivered %d distinct in %d deliveries: duplicates %d, unconfirmed delivered %d\n",
		res.Delivered, res.Deliveries, res.Duplicates, res.UnconfirmedDelivered)
	fmt.Fprintf(w, "lost (confirmed, never delivered) %d%s; phantoms (delivered, never published) %d%s\n",
		len(res.Lost), sample(res.Lost), len(res.Phantoms), sample(res.Phantoms))
	for _, s := range r.Crashes {
		fmt.Fprintln(w, "crash:", s)
	}
	for _, s := range r.Disagreements {
		fmt.Fprintln(w, "disagreement:", s)
	}
	for _, s := range r.Problems {
		fmt.Fprintln(w, "problem:", s)
	}
	if r.OK {
		fmt.Fprintln(w, "result: PASS")
	} else {
		fmt.Fprintln(w, "result: FAIL")
	}
}

// sample shows the first few ids of a list.
func sample(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	if len(ids) > 5 {
		return fmt.Sprintf(" (%s, ...)", strings.Join(ids[:5], ", "))
	}
	return fmt.Sprintf(" (%s)", strings.Join(ids, ", "))
}

// write saves the result (--out) and the history (--history).
func (r *Report) write(c config) error {
	// empty lists are [] in the file, not null
	for _, l := range []*[]string{&r.Crashes, &r.Disagreements, &r.Problems, &r.Result.Lost, &r.Result.Phantoms} {
		if *l == nil {
			*l = []string{}
		}
	}
	if r.Faults == nil {
		r.Faults = []Fault{}
	}
	if c.out != "" {
		if err := writeJSON(c.out, r); err != nil {
			return err
		}
	}
	if c.history != "" {
		if err := writeJSON(c.history, r.events); err != nil {
			return err
		}
	}
	return nil
}

func writeJSON(path string, v any) error {
	var b []byte
	var err error
	if _, isHistory := v.([]Event); isHistory {
		b, err = json.Marshal(v) // can be millions of events
	} else {
		b, err = json.MarshalIndent(v, "", " ")
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
