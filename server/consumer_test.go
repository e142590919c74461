package server

import (
	"errors"
	"fmt"
	"testing"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/server/queue"
)

func tags(rs []unackedRec) string {
	s := ""
	for _, r := range rs {
		s += fmt.Sprintf("%d,", r.tag)
	}
	return s
}

func fill(l *unackedList, n int) {
	for i := 1; i <= n; i++ {
		l.push(unackedRec{tag: uint64(i), e: &queue.Entry{}})
	}
}

func TestUnackedList(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ops      [][2]uint64 // tag, multiple (0/1)
		wantOK   []bool
		wantTook string
		wantLeft int
	}{
		{"single in order", [][2]uint64{{1, 0}, {2, 0}}, []bool{true, true}, "1,2,", 3},
		{"single out of order", [][2]uint64{{3, 0}, {1, 0}}, []bool{true, true}, "3,1,", 3},
		{"double ack fails", [][2]uint64{{2, 0}, {2, 0}}, []bool{true, false}, "2,", 4},
		{"unknown tag fails", [][2]uint64{{9, 0}}, []bool{false}, "", 5},
		{"tag zero single fails", [][2]uint64{{0, 0}}, []bool{false}, "", 5},
		{"multiple up to tag", [][2]uint64{{3, 1}}, []bool{true}, "1,2,3,", 2},
		{"multiple skips holes", [][2]uint64{{2, 0}, {4, 1}}, []bool{true, true}, "2,1,3,4,", 1},
		{"multiple needs the tag itself", [][2]uint64{{2, 0}, {2, 1}}, []bool{true, false}, "2,", 4},
		{"multiple zero takes all", [][2]uint64{{0, 1}}, []bool{true}, "1,2,3,4,5,", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l unackedList
			fill(&l, 5)
			var took []unackedRec
			for i, op := range tc.ops {
				var ok bool
				took, ok = l.take(op[0], op[1] == 1, took)
				if ok != tc.wantOK[i] {
					t.Errorf("op %d (%v) ok = %v, want %v", i, op, ok, tc.wantOK[i])
				}
			}
			if got := tags(took); got != tc.wantTook {
				t.Errorf("took %s, want %s", got, tc.wantTook)
			}
			if l.len() != tc.wantLeft {
				t.Errorf("left %d, want %d", l.len(), tc.wantLeft)
			}
			if got := tags(l.takeAll(nil)); len(got) == 0 && tc.wantLeft != 0 {
				t.Errorf("takeAll returned nothing, want %d", tc.wantLeft)
			}
		})
	}
}

func TestUnackedListCompactsHoles(t *testing.T) {
	var l unackedList
	fill(&l, 1000)
	// Acking every other tag, then every remaining third one, leaves holes in the middle; the
	// list must never store more than about twice what is live.
	for _, step := range []uint64{2, 3} {
		for tag := uint64(step); tag <= 1000; tag += step {
			l.take(tag, false, nil)
			if len(l.recs) > 2*l.len()+33 {
				t.Fatalf("after taking %d: live %d, stored %d", tag, l.len(), len(l.recs))
			}
		}
	}
	if _, ok := l.take(997, true, nil); !ok || l.len() != 0 {
		t.Errorf("multiple to 997 (the last live tag) left %d", l.len())
	}
}

func TestUnackedListRestore(t *testing.T) {
	var l unackedList
	fill(&l, 5)
	took, _ := l.take(2, false, nil)
	took, _ = l.take(4, false, took)
	l.restore(took)
	if got := tags(l.takeAll(nil)); got != "1,2,3,4,5," {
		t.Errorf("after restore %s", got)
	}
}

func TestParseExpiration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  string
	}{
		{"0", 0, ""},
		{"60000", 60000, ""},
		{"+5", 5, ""},
		{"-1", 0, "PRECONDITION_FAILED - invalid expiration '-1': {value_negative,-1}"},
		{"soon", 0, "PRECONDITION_FAILED - invalid expiration 'soon': no_integer"},
		{"", 0, "PRECONDITION_FAILED - invalid expiration '': no_integer"},
		{"12ms", 0, "PRECONDITION_FAILED - invalid expiration '12ms': {leftover_string,\"ms\"}"},
		{"-", 0, "PRECONDITION_FAILED - invalid expiration '-': no_integer"},
	} {
		got, err := parseExpiration(tc.in)
		if tc.err != "" {
			var che *amqpwire.ChannelError
			if !errors.As(err, &che) || che.Code != amqpwire.CodePreconditionFailed || che.Text != tc.err {
				t.Errorf("parseExpiration(%q) err = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseExpiration(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}
