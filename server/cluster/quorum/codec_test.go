package quorum

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/store"
)

func sampleBatch() []byte {
	b := []byte{cmdVersion}
	b = encodeAppend(b, 1, &store.Message{Exchange: "x", RoutingKey: "rk", Properties: []byte{0x80, 0}, Body: []byte("body"), Expiry: -5})
	b = encodeDeliver(b, 1, 3)
	b = encodeRemove(b, 1)
	return encodeDrop(b, 0, ^uint64(0))
}

// Commands decode to what was encoded.
func TestCommandsRoundTrip(t *testing.T) {
	cmds, err := decodeBatch(sampleBatch())
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%c%d:%s/%s/%x/%s/%d %c%d:%d %c%d %c%d-%d", cmds[0].op, cmds[0].seq, cmds[0].msg.Exchange,
		cmds[0].msg.RoutingKey, cmds[0].msg.Properties, cmds[0].msg.Body, cmds[0].msg.Expiry,
		cmds[1].op, cmds[1].seq, cmds[1].n, cmds[2].op, cmds[2].seq, cmds[3].op, cmds[3].seq, cmds[3].n)
	if want := fmt.Sprintf("A1:x/rk/8000/body/-5 D1:3 X1 P0-%d", ^uint64(0)); got != want || len(cmds) != 4 {
		t.Errorf("decoded %s (%d commands), want %s", got, len(cmds), want)
	}
}

// The decoder takes any bytes (a damaged or hostile log entry) without panicking, and what
// it accepts encodes back to the same bytes' meaning.
func FuzzDecodeBatch(f *testing.F) {
	f.Add(sampleBatch())
	f.Add([]byte{cmdVersion})
	f.Add([]byte{cmdVersion, opAppend, 1, 0, 200})
	f.Add([]byte{cmdVersion, opDeliver, 1, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, data []byte) {
		cmds, err := decodeBatch(data)
		if err != nil {
			return
		}
		re := []byte{cmdVersion}
		for _, c := range cmds {
			switch c.op {
			case opAppend:
				re = encodeAppend(re, c.seq, &c.msg)
			case opRemove:
				re = encodeRemove(re, c.seq)
			case opDeliver:
				re = encodeDeliver(re, c.seq, uint32(c.n))
			case opDrop:
				re = encodeDrop(re, c.seq, c.n)
			default:
				t.Fatalf("accepted an unknown command %#x", c.op)
			}
		}
		again, err := decodeBatch(re)
		if err != nil || fmt.Sprint(again) != fmt.Sprint(cmds) {
			t.Fatalf("re-encoded batch decodes to %v (%v), want %v", again, err, cmds)
		}
	})
}

// Raft replays the log after the last snapshot when a member restarts, over a store that
// already holds its effect: applying a suffix of the log again leaves the same records.
func TestApplyingTheLogAgainChangesNothing(t *testing.T) {
	st, err := store.Open(store.Options{Dir: t.TempDir(), NoSync: true, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var log [][]byte
	for i := uint64(1); i <= 6; i++ {
		log = append(log, encodeAppend([]byte{cmdVersion}, i, &store.Message{Body: []byte(fmt.Sprint(i))}))
	}
	log = append(log, encodeDeliver(encodeRemove([]byte{cmdVersion}, 2), 3, 1), encodeDrop([]byte{cmdVersion}, 4, 5))
	apply := func(f *fsm, from int) {
		for i, data := range log[from:] {
			res := f.Apply(&raft.Log{Index: uint64(from + i + 1), Type: raft.LogCommand, Data: data}).(*applied)
			if err := <-res.stored; err != nil {
				t.Fatal(err)
			}
		}
	}
	state := func() string {
		recs, err := st.ReadQueue(9, 0, 100, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		for _, r := range recs {
			fmt.Fprintf(&b, "%s:%d ", r.Msg.Body, r.Deliveries)
		}
		return b.String()
	}
	apply(newFSM(st, 9, zerolog.Nop()), 0)
	want := "1:0 3:1 4:0 6:0 "
	if got := state(); got != want {
		t.Fatalf("after the log the store holds %q, want %q", got, want)
	}
	for from := range log {
		f := newFSM(st, 9, zerolog.Nop())
		apply(f, from)
		if got := state(); got != want {
			t.Errorf("replaying from entry %d leaves %q, want %q", from+1, got, want)
		}
	}
}

// A timing that sets only the heartbeat timeout is one raft accepts.
func TestTimingDefaultsFitTheHeartbeatTimeout(t *testing.T) {
	for _, hb := range []time.Duration{100 * time.Millisecond, 10 * time.Second} {
		tm := Timing{HeartbeatTimeout: hb}.withDefaults()
		conf := raft.DefaultConfig()
		conf.LocalID = "n1"
		conf.HeartbeatTimeout, conf.ElectionTimeout, conf.LeaderLeaseTimeout = tm.HeartbeatTimeout, tm.ElectionTimeout, tm.LeaderLeaseTimeout
		conf.CommitTimeout = tm.CommitTimeout
		if err := raft.ValidateConfig(conf); err != nil {
			t.Errorf("heartbeat timeout %s: %v", hb, err)
		}
	}
}
