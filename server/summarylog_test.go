package server

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// A summaryLog lets the first event of each key through, counts the rest (those of keys
// beyond its bound under one shared key), and logs the counts on close.
func TestSummaryLogCountsFloods(t *testing.T) {
	logs := &lockedBuffer{}
	s := newSummaryLog(zerolog.New(logs), "events", "source", time.Hour, 2)
	now := time.Now()
	var full []string
	for i := range 10 {
		for _, key := range []string{"a", "b", "c", "d"} {
			if s.note(key, fmt.Sprintf("%s%d", key, i), now) {
				full = append(full, key)
			}
		}
	}
	if fmt.Sprint(full) != "[a b]" {
		t.Fatalf("logged in full: %v, want the first of a and b only", full)
	}
	s.close()
	got := map[string]int{}
	for _, line := range logs.lines() {
		var e struct {
			Source string `json:"source"`
			Count  int    `json:"count"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		got[e.Source] = e.Count
	}
	if want := map[string]int{"a": 9, "b": 9, summaryOther: 20}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("summaries %v, want %v", got, want)
	}
}
