package main

import (
	"reflect"
	"testing"
)

// TestPlanReplaysAndCoversEveryKind: the same seed draws the same faults (a failing run can be
// replayed with --seed), another seed others, and a run of at least as many faults as kinds
// has every kind.
func TestPlanReplaysAndCoversEveryKind(t *testing.T) {
	kinds := []string{faultKill, faultPause, faultPartition}
	a, b := plan(newRand(42), kinds, 40), plan(newRand(42), kinds, 40)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("seed 42 drew %v, then %v", a, b)
	}
	if reflect.DeepEqual(a, plan(newRand(43), kinds, 40)) {
		t.Fatal("seeds 42 and 43 drew the same 40 faults")
	}
	for seed := int64(1); seed <= 50; seed++ {
		got := map[string]int{}
		for _, k := range plan(newRand(seed), kinds, 3) {
			got[k]++
		}
		if len(got) != 3 {
			t.Fatalf("seed %d: 3 faults were %v, want one of each kind", seed, got)
		}
	}
}
