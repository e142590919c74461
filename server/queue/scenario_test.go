package queue

// Scenario tests: TestScenarios runs the scripts in testdata/*.txt against a queue over a fake
// journal and a fake clock. Nothing runs on its own: time moves only at "tick", writes become
// durable only at "commit", reads from disk come back only at "pagein", so every script is
// deterministic and needs no sleep.
//
// A file holds scenarios, each starting with a line "== name". A line is a command and its
// words; "#" starts a comment; "-> ..." at the end of a command is what it must return. BODY
// names a message: its body is the name (size=N pads it with dots to N bytes), so names must
// be unique within a scenario. A delivered entry is written BODY*, with a star, when it is
// marked redelivered.
//
// Setting up:
//
//	queue [ttl=MS] [max-length=N] [max-bytes=N] [overflow=drop-head|reject-publish|reject-publish-dlx]
//	      [delivery-limit=N] [max-priority=N] [sac] [durable] [window=N] [window-bytes=N]
//	      [recover=BODY,BODY,...]
//	    The queue, with those x-arguments. window=N pages it through the fake journal (a
//	    journal per priority level) with a window of N messages (window-bytes, 1 MiB by
//	    default). recover=... starts it from those records on disk, numbered from 1, written
//	    without deadlines.
//	policy [same options as queue, but the fixed ones]   Reconfigure: a policy changed.
//
// Driving it:
//
//	publish BODY... [ttl=MS] [priority=N] [persistent] [size=N] [-> enqueued|refused|gone]
//	hold BODY... [same options]    publish held for a confirm (PublishHeld)
//	release BODY... / withdraw BODY...
//	consume NAME [credit=N] [noack] [priority=N] [exclusive] [-> ok|exclusive-use|deleted]
//	    credit is the consumer's prefetch room (unlimited by default).
//	credit NAME N                  N more credit, then Kick
//	cancel NAME                    RemoveConsumer
//	ack NAME BODY... / reject NAME BODY... / requeue NAME BODY...
//	    settle what NAME was given, in that order; NAME "get" is basic.get's.
//	get [noack] -> BODY|empty|wait  one basic.get (TryGet): wait means the next entry is
//	    being read back from disk.
//	drain -> BODY...|-             basic.get (no-ack) until empty, answering reads on the way
//	tick MS                        the clock moves MS milliseconds, running what falls due
//	commit                         the store's group commit: every write so far is durable
//	pagein [fail]                  answer (or fail) every read requested so far
//	lose BODY...                   the records vanish from the journal (a failed write)
//	purge -> N / delete -> N       ready entries dropped
//	window N / trim [-> waiting|done]   SetWindow (count N) / Trim
//
// Checking (every delivery and dead letter must be checked before the scenario ends):
//
//	expect NAME BODY...|-          what consumer NAME was given since its last check, in order
//	expect dead BODY:REASON...|-   what was dead-lettered since the last check, in order (BODY*
//	                               when it had been delivered and returned)
//	expect ready|unacked|bytes|consumers N   the queue's Stats
//	expect memory N                ready entries whose bodies are in memory (paged queues)
//	expect disk BODY...|-          the durable records in the journals, in Seq order
//	expect reads N                 reads requested and not answered
//
// After each command the clock runs the callbacks already due, as a real timer would.

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/amqpwire"
)

func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios in testdata: %v", err)
	}
	for _, f := range files {
		for _, sc := range readScenarios(t, f) {
			t.Run(strings.TrimSuffix(filepath.Base(f), ".txt")+"/"+sc.name, func(t *testing.T) {
				r := &runner{t: t, clk: newFakeClock(), consumers: map[string]*scConsumer{}, entries: map[string]*Entry{}}
				r.consumers["get"] = &scConsumer{name: "get"}
				for _, l := range sc.lines {
					r.line = l
					r.exec(l.words, l.want)
					r.clk.advance(0)
				}
				r.line = line{no: sc.end, text: "(end of scenario)"}
				r.checkAllSeen()
			})
		}
	}
}

type line struct {
	no    int
	text  string
	words []string
	want  []string // after "->"; nil when there is none
}

type scenario struct {
	name  string
	lines []line
	end   int
}

func readScenarios(t *testing.T, path string) []scenario {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []scenario
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		text := sc.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		if name, ok := strings.CutPrefix(text, "=="); ok {
			out = append(out, scenario{name: strings.ReplaceAll(strings.TrimSpace(name), " ", "_")})
			continue
		}
		if len(out) == 0 {
			t.Fatalf("%s:%d: a command before the first \"== name\"", path, n)
		}
		l := line{no: n, text: text}
		cmd, want, ok := strings.Cut(text, "->")
		l.words = strings.Fields(cmd)
		if ok {
			l.want = strings.Fields(want)
		}
		s := &out[len(out)-1]
		s.lines = append(s.lines, l)
		s.end = n
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// scConsumer is a scenario's consumer: it takes entries while it has credit (-1: unlimited).
type scConsumer struct {
	name   string
	credit int
	got    []*Entry // given since the last check
}

func (c *scConsumer) Deliver(_ *Queue, e *Entry) bool {
	if c.credit == 0 {
		return false
	}
	if c.credit > 0 {
		c.credit--
	}
	c.got = append(c.got, e)
	return true
}

type runner struct {
	t         *testing.T
	line      line
	clk       *fakeClock
	q         *Queue
	j         *fakeJournal   // level 0's; nil for an in-memory queue
	journals  []*fakeJournal // every level's
	consumers map[string]*scConsumer
	entries   map[string]*Entry // by body name: the entries handed out and not settled
	dead      []Dead
}

func (r *runner) fatalf(format string, args ...any) {
	r.t.Helper()
	r.t.Fatalf("line %d %q: %s", r.line.no, r.line.text, fmt.Sprintf(format, args...))
}

// opts splits words into names and key=value options (a bare word that is a known flag
// becomes flag=true).
func (r *runner) opts(words []string, flags ...string) (names []string, kv map[string]string) {
	kv = map[string]string{}
	for _, w := range words {
		if k, v, ok := strings.Cut(w, "="); ok {
			kv[k] = v
		} else if slices.Contains(flags, w) {
			kv[w] = "true"
		} else {
			names = append(names, w)
		}
	}
	return names, kv
}

func (r *runner) num(s string) int {
	r.t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		r.fatalf("%q is not a number", s)
	}
	return n
}

func (r *runner) features(kv map[string]string, f Features) Features {
	for k, v := range kv {
		switch k {
		case "ttl":
			f.HasTTL, f.MessageTTL = true, time.Duration(r.num(v))*time.Millisecond
		case "max-length":
			f.MaxLength = r.num(v)
		case "max-bytes":
			f.MaxBytes = r.num(v)
		case "overflow":
			f.Overflow = map[string]Overflow{"drop-head": DropHead, "reject-publish": RejectPublish, "reject-publish-dlx": RejectPublishDLX}[v]
		case "delivery-limit":
			f.DeliveryLimit = r.num(v)
		case "max-priority":
			f.MaxPriority = uint8(r.num(v))
		case "sac":
			f.SingleActiveConsumer = true
		case "durable", "window", "window-bytes", "recover":
		default:
			r.fatalf("unknown queue option %s", k)
		}
	}
	return f
}

func (r *runner) newQueue(words []string) {
	_, kv := r.opts(words, "sac", "durable")
	opts := Options{Features: r.features(kv, NoFeatures), Clock: r.clk, Durable: kv["durable"] != ""}
	opts.DeadLetter = func(_ *Queue, dead []Dead) { r.dead = append(r.dead, dead...) }
	if w, ok := kv["window"]; ok {
		r.j = newFakeJournal()
		r.journals = []*fakeJournal{r.j}
		opts.Journal = r.j
		opts.Window = Window{Count: r.num(w), Bytes: 1 << 20}
		if b, ok := kv["window-bytes"]; ok {
			opts.Window.Bytes = r.num(b)
		}
		opts.LevelJournal = func(uint8) Journal {
			lj := r.j.level()
			r.journals = append(r.journals, lj)
			return lj
		}
	}
	rec, ok := kv["recover"]
	if !ok {
		r.q = New("q", opts)
		return
	}
	if r.j == nil {
		r.fatalf("recover needs a window (a journal)")
	}
	names := strings.Split(rec, ",")
	for i, n := range names {
		seq := uint64(i + 1)
		r.j.records[seq] = &Entry{Seq: seq, Msg: &Message{Body: []byte(n)}, Stored: true}
		r.j.durable[seq] = true
	}
	r.q = Recover("q", opts, []Restored{{Count: len(names), Bytes: len(rec) - len(names) + 1, First: 1, Last: uint64(len(names))}})
}

func (r *runner) message(name string, kv map[string]string) *Message {
	m := &Message{Body: []byte(name)}
	for k, v := range kv {
		switch k {
		case "ttl":
			m.HasTTL, m.TTL = true, int64(r.num(v))
		case "priority":
			m.Properties.Flags |= amqpwire.FlagPriority
			m.Properties.Priority = uint8(r.num(v))
		case "persistent":
			m.Persistent = true
		case "size":
			if n := r.num(v); n > len(m.Body) {
				m.Body = append(m.Body, strings.Repeat(".", n-len(m.Body))...)
			}
		default:
			r.fatalf("unknown message option %s", k)
		}
	}
	return m
}

func bodyName(e *Entry) string { return strings.TrimRight(string(e.Msg.Body), ".") }

// show writes entries as a script would: BODY, with a star when redelivered.
func show(es []*Entry) string {
	if len(es) == 0 {
		return "-"
	}
	var s []string
	for _, e := range es {
		n := bodyName(e)
		if e.Redelivered {
			n += "*"
		}
		s = append(s, n)
	}
	return strings.Join(s, " ")
}

func (r *runner) wantOne(got string) {
	r.t.Helper()
	if want := strings.Join(r.line.want, " "); r.line.want != nil && got != want {
		r.fatalf("got %s, want %s", got, want)
	}
}

// given records entries handed to consumer c, to be settled by name later.
func (r *runner) given(es []*Entry) {
	for _, e := range es {
		r.entries[bodyName(e)] = e
	}
}

func (r *runner) taken(names []string) []*Entry {
	var es []*Entry
	for _, n := range names {
		e, ok := r.entries[n]
		if !ok {
			r.fatalf("%s was not handed out (or was settled already)", n)
		}
		delete(r.entries, n)
		es = append(es, e)
	}
	return es
}

func (r *runner) exec(words, want []string) {
	r.t.Helper()
	if len(words) == 0 {
		r.fatalf("no command")
	}
	cmd, args := words[0], words[1:]
	if cmd != "queue" && r.q == nil {
		r.fatalf("the first command must be queue")
	}
	switch cmd {
	case "queue":
		r.newQueue(args)
	case "policy":
		_, kv := r.opts(args, "sac")
		r.q.Reconfigure(r.features(kv, NoFeatures))
	case "publish", "hold":
		names, kv := r.opts(args, "persistent")
		for _, n := range names {
			m := r.message(n, kv)
			var res Result
			if cmd == "hold" {
				var e *Entry
				res, e, _ = r.q.PublishHeld(m, nil)
				if e != nil {
					r.entries["held:"+n] = e
				}
			} else {
				res, _ = r.q.Publish(m, nil)
			}
			r.wantOne([]string{"enqueued", "refused", "gone"}[res])
		}
	case "release", "withdraw":
		var es []*Entry
		for _, n := range args {
			es = append(es, r.taken([]string{"held:" + n})...)
		}
		if cmd == "release" {
			r.q.Release(es...)
		} else {
			r.q.Withdraw(es...)
		}
	case "consume":
		names, kv := r.opts(args, "noack", "exclusive")
		if len(names) != 1 {
			r.fatalf("consume takes one name")
		}
		c := &scConsumer{name: names[0], credit: -1}
		if v, ok := kv["credit"]; ok {
			c.credit = r.num(v)
		}
		co := ConsumerOptions{NoAck: kv["noack"] != "", Exclusive: kv["exclusive"] != ""}
		if v, ok := kv["priority"]; ok {
			co.Priority = int32(r.num(v))
		}
		r.consumers[c.name] = c
		got := "ok"
		switch err := r.q.AddConsumer(c, co); err {
		case ErrExclusiveUse:
			got = "exclusive-use"
		case ErrDeleted:
			got = "deleted"
		}
		r.wantOne(got)
	case "credit":
		c := r.consumer(args[0])
		c.credit = max(c.credit, 0) + r.num(args[1])
		r.q.Kick()
	case "cancel":
		r.q.RemoveConsumer(r.consumer(args[0]))
	case "ack", "reject", "requeue":
		r.consumer(args[0])
		es := r.taken(args[1:])
		map[string]func([]*Entry){"ack": r.q.Settle, "reject": r.q.Reject, "requeue": r.q.Requeue}[cmd](es)
	case "get":
		e, _, wait := r.q.TryGet(slices.Contains(args, "noack"))
		switch {
		case wait != nil:
			r.wantOne("wait")
		case e == nil:
			r.wantOne("empty")
		default:
			if !slices.Contains(args, "noack") {
				r.given([]*Entry{e})
			}
			r.wantOne(show([]*Entry{e}))
		}
	case "drain":
		var got []*Entry
		for {
			e, _, wait := r.q.TryGet(true)
			if wait != nil {
				r.answerReads(nil)
				continue
			}
			if e == nil {
				break
			}
			got = append(got, e)
		}
		r.wantOne(show(got))
	case "tick":
		r.clk.advance(int64(r.num(args[0])))
	case "commit":
		if r.j != nil {
			r.j.commit()
		}
	case "pagein":
		var fail error
		if slices.Contains(args, "fail") {
			fail = errFakeRead
		}
		if r.answerReads(fail) == 0 {
			r.fatalf("no read to answer")
		}
	case "lose":
		for _, j := range r.journals {
			for seq, e := range j.records {
				if slices.Contains(args, bodyName(e)) {
					delete(j.records, seq)
				}
			}
		}
	case "purge":
		r.wantOne(strconv.Itoa(r.q.Purge()))
	case "delete":
		_, n := r.q.Delete()
		r.wantOne(strconv.Itoa(n))
	case "window":
		r.q.SetWindow(Window{Count: r.num(args[0]), Bytes: 1 << 20})
	case "trim":
		r.wantOne(map[bool]string{true: "waiting", false: "done"}[r.q.Trim()])
	case "expect":
		r.expect(args)
	default:
		r.fatalf("unknown command %s", cmd)
	}
}

func (r *runner) answerReads(fail error) int {
	if r.j == nil {
		return 0
	}
	return r.j.st.answer(fail)
}

func (r *runner) consumer(name string) *scConsumer {
	c, ok := r.consumers[name]
	if !ok {
		r.fatalf("no consumer %s", name)
	}
	return c
}

func (r *runner) expect(args []string) {
	r.t.Helper()
	if len(args) == 0 {
		r.fatalf("expect what?")
	}
	want := strings.Join(args[1:], " ")
	st := r.q.Stats()
	got := ""
	switch args[0] {
	case "dead":
		var s []string
		for _, d := range r.dead {
			s = append(s, show([]*Entry{d.Entry})+":"+string(d.Reason))
		}
		r.dead = nil
		got = strings.Join(s, " ")
		if got == "" {
			got = "-"
		}
	case "ready":
		got = strconv.Itoa(st.Ready)
	case "unacked":
		got = strconv.Itoa(st.Unacked)
	case "bytes":
		got = strconv.Itoa(st.ReadyBytes)
	case "consumers":
		got = strconv.Itoa(st.Consumers)
	case "memory":
		got = strconv.Itoa(r.inMemory())
	case "disk":
		got = r.disk()
	case "reads":
		n := 0
		if r.j != nil {
			n = len(r.j.st.reads)
		}
		got = strconv.Itoa(n)
	default:
		c := r.consumer(args[0])
		got = show(c.got)
		r.given(c.got)
		c.got = nil
	}
	if got != want {
		r.fatalf("%s is %s, want %s", args[0], got, want)
	}
}

func (r *runner) inMemory() int {
	r.q.mu.Lock()
	defer r.q.mu.Unlock()
	levels := []Backlog{r.q.backlog}
	if pb, ok := r.q.backlog.(*PriorityBacklog); ok {
		levels = pb.levels
	}
	n := 0
	for _, l := range levels {
		if pb, ok := l.(*PagedBacklog); ok {
			n += pb.InMemory()
		} else {
			n += l.Len()
		}
	}
	return n
}

func (r *runner) disk() string {
	var es []*Entry
	for _, j := range r.journals {
		for _, e := range j.records {
			es = append(es, e)
		}
	}
	sort.Slice(es, func(a, b int) bool { return es[a].Seq < es[b].Seq })
	if len(es) == 0 {
		return "-"
	}
	var s []string
	for _, e := range es {
		s = append(s, bodyName(e))
	}
	return strings.Join(s, " ")
}

func (r *runner) checkAllSeen() {
	r.t.Helper()
	if len(r.dead) > 0 {
		r.fatalf("dead letters not checked: %d, the first %s (%s)", len(r.dead), bodyName(r.dead[0].Entry), r.dead[0].Reason)
	}
	for _, c := range r.consumers {
		if len(c.got) > 0 {
			r.fatalf("deliveries to %s not checked: %s", c.name, show(c.got))
		}
	}
}
