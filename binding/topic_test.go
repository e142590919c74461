package binding

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func q(name string) Destination { return Destination{Kind: DestQueue, Name: name} }

// naiveMatch is the reference matcher: a direct reading of the topic rules on word lists,
// backtracking over "#". It is exponential in the worst case, so fuzz inputs stay short.
func naiveMatch(bindingKey, routingKey string) bool {
	return naiveWords(splitWords(bindingKey), splitWords(routingKey))
}

func splitWords(key string) []string {
	if key == "" {
		return nil
	}
	return strings.Split(key, ".")
}

func naiveWords(p, k []string) bool {
	if len(p) == 0 {
		return len(k) == 0
	}
	switch p[0] {
	case "#":
		for i := 0; i <= len(k); i++ {
			if naiveWords(p[1:], k[i:]) {
				return true
			}
		}
		return false
	case "*":
		return len(k) > 0 && naiveWords(p[1:], k[1:])
	}
	return len(k) > 0 && k[0] == p[0] && naiveWords(p[1:], k[1:])
}

// naiveRoute returns the sorted, distinct destinations of every pair whose key matches.
func naiveRoute(pairs []topicPair, routingKey string) []Destination {
	var out []Destination
	for _, p := range pairs {
		if naiveMatch(p.key, routingKey) && !slices.Contains(out, p.dest) {
			out = append(out, p.dest)
		}
	}
	slices.SortFunc(out, compareDest)
	return out
}

type topicPair struct {
	key  string
	dest Destination
}

func matchSorted(t *Topic, routingKey string) []Destination {
	out := t.Match(routingKey, nil)
	slices.SortFunc(out, compareDest)
	return out
}

func names(ds []Destination) []string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = d.Name
	}
	slices.Sort(s)
	return s
}

// rabbitTopicBindings is the binding set of RabbitMQ's topic exchange test (t1…t26; the
// args-test aliasing case t27 lives in the exchange package, where arguments exist).
var rabbitTopicBindings = []topicPair{
	{"a.b.c", q("t1")}, {"a.*.c", q("t2")}, {"a.#.b", q("t3")}, {"a.b.b.c", q("t4")},
	{"#", q("t5")}, {"#.#", q("t6")}, {"#.b", q("t7")}, {"*.*", q("t8")}, {"a.*", q("t9")},
	{"*.b.c", q("t10")}, {"a.#", q("t11")}, {"a.#.#", q("t12")}, {"b.b.c", q("t13")},
	{"a.b.b", q("t14")}, {"a.b", q("t15")}, {"b.c", q("t16")}, {"", q("t17")},
	{"*.*.*", q("t18")}, {"vodka.martini", q("t19")}, {"a.b.c", q("t20")}, {"*.#", q("t21")},
	{"#.*.#", q("t22")}, {"*.#.#", q("t23")}, {"#.#.#", q("t24")}, {"*", q("t25")},
	{"#.b.#", q("t26")},
}

func TestTopicRabbitMQSuite(t *testing.T) {
	tr := NewTopic()
	for _, p := range rabbitTopicBindings {
		if !tr.Add(p.key, p.dest) {
			t.Fatalf("Add(%q, %v) = false on first add", p.key, p.dest)
		}
	}
	before := []struct {
		key  string
		want string
	}{
		{"a.b.c", "t1 t2 t5 t6 t10 t11 t12 t18 t20 t21 t22 t23 t24 t26"},
		{"a.b", "t3 t5 t6 t7 t8 t9 t11 t12 t15 t21 t22 t23 t24 t26"},
		{"a.b.b", "t3 t5 t6 t7 t11 t12 t14 t18 t21 t22 t23 t24 t26"},
		{"", "t5 t6 t17 t24"},
		{"b.c.c", "t5 t6 t18 t21 t22 t23 t24 t26"},
		{"a.a.a.a.a", "t5 t6 t11 t12 t21 t22 t23 t24"},
		{"vodka.gin", "t5 t6 t8 t21 t22 t23 t24"},
		{"vodka.martini", "t5 t6 t8 t19 t21 t22 t23 t24"},
		{"b.b.c", "t5 t6 t10 t13 t18 t21 t22 t23 t24 t26"},
		{"nothing.here.at.all", "t5 t6 t21 t22 t23 t24"},
		{"oneword", "t5 t6 t21 t22 t23 t24 t25"},
	}
	check := func(when string, cases []struct{ key, want string }) {
		t.Helper()
		for _, c := range cases {
			want := strings.Fields(c.want)
			slices.Sort(want)
			if got := names(tr.Match(c.key, nil)); !slices.Equal(got, want) {
				t.Errorf("%s: Match(%q) = %v, want %v", when, c.key, got, want)
			}
		}
	}
	check("before removal", before)

	// RabbitMQ removes bindings 1, 5, 11, 19 and 21 (and 28, an args alias of t27).
	for _, i := range []int{1, 5, 11, 19, 21} {
		p := rabbitTopicBindings[i-1]
		if !tr.Remove(p.key, p.dest) {
			t.Fatalf("Remove(%q, %v) = false", p.key, p.dest)
		}
	}
	check("after removal", []struct{ key, want string }{
		{"a.b.c", "t2 t6 t10 t12 t18 t20 t22 t23 t24 t26"},
		{"a.b", "t3 t6 t7 t8 t9 t12 t15 t22 t23 t24 t26"},
		{"a.b.b", "t3 t6 t7 t12 t14 t18 t22 t23 t24 t26"},
		{"", "t6 t17 t24"},
		{"b.c.c", "t6 t18 t22 t23 t24 t26"},
		{"a.a.a.a.a", "t6 t12 t22 t23 t24"},
		{"vodka.gin", "t6 t8 t22 t23 t24"},
		{"vodka.martini", "t6 t8 t22 t23 t24"},
		{"b.b.c", "t6 t10 t13 t18 t22 t23 t24 t26"},
		{"nothing.here.at.all", "t6 t22 t23 t24"},
		{"oneword", "t6 t22 t23 t24 t25"},
	})
	if got, want := tr.Len(), len(rabbitTopicBindings)-5; got != want {
		t.Errorf("Len = %d, want %d", got, want)
	}
}

func TestTopicSemantics(t *testing.T) {
	cases := []struct {
		binding, routing string
		want             bool
	}{
		{"", "", true},
		{"", "a", false},
		{"", ".", false},
		{"#", "", true},
		{"#", "a", true},
		{"#", "a.b.c", true},
		{"#", ".", true},
		{"*", "", false},
		{"*", "a", true},
		{"*", "a.b", false},
		{"*", ".", false},
		{"a.#", "a", true},
		{"a.#", "a.b.c", true},
		{"a.#", "b", false},
		{"a.#", "a.", true},
		{"#.a", "a", true},
		{"#.a", "x.y.a", true},
		{"#.a", "a.x", false},
		{"a.*", "a", false},
		{"a.*", "a.", true}, // the empty word after the dot is a word
		{"a..b", "a..b", true},
		{"a.*.b", "a..b", true},
		{"a.b", "a..b", false},
		{".", ".", true},
		{"*.*", ".", true},
		{".a", ".a", true},
		{"*.a", ".a", true},
		{"a.", "a.", true},
		{"a.", "a", false},
		{"#.#", "", true},
		{"#.*.#", "", false},
		{"#.*.#", "x", true},
		{"a.#.b", "a.b", true},
		{"a.#.b", "a.x.y.b", true},
		{"a.#.b", "a.b.c", false},
		{"stock.*.ibm", "stock.nyse.ibm", true},
		{"stock.*.ibm", "stock.nyse.IBM", false}, // case-sensitive
		{"*", "*", true},
		{"#", "#", true},
		{"a.*", "a.#", true},
		{"a.b", "a.*", false}, // a "*" in a routing key is a literal word
		{"#.error", "app.db.error", true},
		{"#.error", "error", true},
		{"#.error", "errors", false},
		{"a#", "a#", true}, // wildcards only as whole words
		{"a#", "ab", false},
		{"*b", "ab", false},
		{"*b", "*b", true},
	}
	for _, c := range cases {
		if got := naiveMatch(c.binding, c.routing); got != c.want {
			t.Errorf("naive(%q, %q) = %v, want %v", c.binding, c.routing, got, c.want)
		}
		tr := NewTopic()
		tr.Add(c.binding, q("q"))
		if got := len(tr.Match(c.routing, nil)) == 1; got != c.want {
			t.Errorf("trie(%q, %q) = %v, want %v", c.binding, c.routing, got, c.want)
		}
	}
}

func TestTopicDedupe(t *testing.T) {
	tr := NewTopic()
	for _, k := range []string{"a.b", "a.*", "#", "*.b", "a.#", "#.b"} {
		tr.Add(k, q("one"))
	}
	tr.Add("a.b", q("two"))
	tr.Add("x", q("three"))
	got := tr.Match("a.b", nil)
	if len(got) != 2 || !slices.Equal(names(got), []string{"one", "two"}) {
		t.Fatalf("Match = %v, want one and two once each", got)
	}
	// Appends after what the caller already has, and dedupes only its own part.
	prefix := []Destination{q("one")}
	got = tr.Match("a.b", prefix)
	if len(got) != 3 || got[0] != q("one") {
		t.Fatalf("Match with prefix = %v", got)
	}
	// Many destinations on many matching nodes: the sorting path.
	tr = NewTopic()
	for i := range 100 {
		d := q(fmt.Sprintf("q%03d", i))
		tr.Add("a.b", d)
		tr.Add("a.*", d)
		tr.Add("#", d)
	}
	if got := tr.Match("a.b", nil); len(got) != 100 {
		t.Fatalf("Match returned %d destinations, want 100", len(got))
	}
	// Same destination name, different kinds: distinct.
	tr = NewTopic()
	tr.Add("a", Destination{DestQueue, "x"})
	tr.Add("#", Destination{DestExchange, "x"})
	if got := tr.Match("a", nil); len(got) != 2 {
		t.Fatalf("queue x and exchange x: got %v", got)
	}
}

func TestTopicAddRemovePrune(t *testing.T) {
	tr := NewTopic()
	if !tr.Add("a.b.c", q("q1")) || tr.Add("a.b.c", q("q1")) {
		t.Fatal("Add must report true then false for the same pair")
	}
	if !tr.Add("a.b.c", q("q2")) || !tr.Add("a.*.#", q("q1")) || !tr.Add("", q("q3")) {
		t.Fatal("Add of new pairs must report true")
	}
	if tr.Len() != 4 {
		t.Fatalf("Len = %d, want 4", tr.Len())
	}
	if tr.Remove("a.b", q("q1")) || tr.Remove("a.b.c", q("nope")) || tr.Remove("x.y", q("q1")) {
		t.Fatal("Remove of absent pairs must report false")
	}
	if !tr.Remove("a.b.c", q("q1")) || tr.Remove("a.b.c", q("q1")) {
		t.Fatal("Remove must report true then false")
	}
	if got := names(tr.Match("a.b.c", nil)); !slices.Equal(got, []string{"q1", "q2"}) {
		t.Fatalf("Match = %v", got)
	}
	tr.Remove("a.b.c", q("q2"))
	tr.Remove("a.*.#", q("q1"))
	tr.Remove("", q("q3"))
	if tr.Len() != 0 {
		t.Fatalf("Len = %d, want 0", tr.Len())
	}
	if !tr.root.empty() {
		t.Fatalf("root not pruned: %+v", tr.root)
	}

	// Pruning stops at a node that still has other children or destinations.
	tr.Add("a.b.c", q("q1"))
	tr.Add("a", q("q2"))
	tr.Add("a.#", q("q3"))
	tr.Remove("a.b.c", q("q1"))
	a := tr.root.words["a"]
	if a == nil || a.words != nil || a.hash == nil || a.dests.len() != 1 {
		t.Fatalf("after removing a.b.c: node a = %+v", a)
	}
	tr.Remove("a.#", q("q3"))
	if a.hash != nil {
		t.Fatal("a.# not pruned")
	}
}

func TestTopicLargeDestSet(t *testing.T) {
	tr := NewTopic()
	const n = 200
	for i := range n {
		if !tr.Add("#", q(fmt.Sprint(i))) {
			t.Fatal("Add false")
		}
	}
	if tr.Add("#", q("7")) {
		t.Fatal("duplicate accepted with an index")
	}
	for i := 0; i < n; i += 2 {
		if !tr.Remove("#", q(fmt.Sprint(i))) {
			t.Fatalf("Remove %d false", i)
		}
	}
	if got := len(tr.Match("x", nil)); got != n/2 {
		t.Fatalf("Match = %d destinations, want %d", got, n/2)
	}
	for i := 1; i < n; i += 2 {
		if !tr.Remove("#", q(fmt.Sprint(i))) {
			t.Fatalf("Remove %d false", i)
		}
	}
	if tr.Len() != 0 || !tr.root.empty() {
		t.Fatal("not empty after removing all")
	}
}

// TestTopicInternedIDs checks that destination ids are freed with their last pair and reused.
func TestTopicInternedIDs(t *testing.T) {
	tr := NewTopic()
	for round := range 50 {
		for i := range 40 {
			d := q(fmt.Sprintf("r%d-q%d", round, i))
			tr.Add("a.#", d)
			tr.Add("#.b", d)
			tr.Add("a.b", d)
		}
		if got := len(tr.Match("a.b", nil)); got != 40 {
			t.Fatalf("round %d: Match = %d destinations, want 40", round, got)
		}
		for i := range 40 {
			d := q(fmt.Sprintf("r%d-q%d", round, i))
			tr.Remove("a.#", d)
			if got := tr.Match("a.b", nil); !slices.Contains(got, d) {
				t.Fatalf("round %d: %v gone while still bound with a.b and #.b", round, d)
			}
			tr.Remove("#.b", d)
			tr.Remove("a.b", d)
		}
	}
	if len(tr.dests) > 40 || len(tr.ids) != 0 {
		t.Fatalf("ids not reused: %d slots, %d live", len(tr.dests), len(tr.ids))
	}
	// A name that is a slice of a larger buffer is copied.
	buf := []byte("queue-name-in-a-frame")
	d := Destination{DestQueue, string(buf[:5])}
	tr.Add("k", d)
	if got := tr.Match("k", nil); len(got) != 1 || got[0].Name != "queue" {
		t.Fatalf("Match = %v", got)
	}
}

// TestTopicManyHashes checks that keys with many "#" words route in polynomial time: a
// backtracking matcher takes C(64, 8) steps here.
func TestTopicManyHashes(t *testing.T) {
	tr := NewTopic()
	tr.Add("#.a.#.a.#.a.#.a.#.a.#.a.#.a.#.b", q("q"))
	tr.Add(strings.Repeat("#.", 40)+"c", q("r"))
	key := strings.Repeat("a.", 64) + "c"
	if got := tr.Match(key, nil); len(got) != 1 || got[0] != q("r") {
		t.Fatalf("Match = %v, want r", got)
	}
}

func TestTopicMatchAllocs(t *testing.T) {
	tr := NewTopic()
	for _, p := range rabbitTopicBindings {
		tr.Add(p.key, p.dest)
	}
	out := make([]Destination, 0, 64)
	allocs := testing.AllocsPerRun(100, func() {
		out = tr.Match("a.b.c", out[:0])
	})
	if allocs != 0 {
		t.Fatalf("Match allocates %.1f times per call", allocs)
	}
}

// randomTopicKey builds short keys over a tiny alphabet so that matches are frequent.
func randomTopicKey(r *rand.Rand, wildcards bool) string {
	words := []string{"a", "b", ""}
	if wildcards {
		words = append(words, "*", "#", "#", "*")
	}
	n := r.IntN(5)
	if n == 0 {
		return ""
	}
	parts := make([]string, n)
	for i := range parts {
		parts[i] = words[r.IntN(len(words))]
	}
	return strings.Join(parts, ".")
}

// TestTopicRandomAgainstNaive is the deterministic cousin of FuzzTopicMatch: random binding
// sets, random adds and removes, every routing key checked against the naive matcher.
func TestTopicRandomAgainstNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 600 {
		tr := NewTopic()
		var pairs []topicPair
		// Every other round binds many destinations, so that results pass 32 and are
		// deduplicated with the bitset.
		dests, bindings := 4, 20
		if round%2 == 1 {
			dests, bindings = 80, 300
		}
		for range r.IntN(bindings) {
			p := topicPair{randomTopicKey(r, true), q(fmt.Sprint(r.IntN(dests)))}
			added := tr.Add(p.key, p.dest)
			if added == slices.Contains(pairs, p) {
				t.Fatalf("round %d: Add(%q,%v) = %v with pairs %v", round, p.key, p.dest, added, pairs)
			}
			if added {
				pairs = append(pairs, p)
			}
			if len(pairs) > 0 && r.IntN(4) == 0 {
				i := r.IntN(len(pairs))
				if !tr.Remove(pairs[i].key, pairs[i].dest) {
					t.Fatalf("round %d: Remove(%v) = false", round, pairs[i])
				}
				pairs = slices.Delete(pairs, i, i+1)
			}
		}
		if tr.Len() != len(pairs) {
			t.Fatalf("round %d: Len = %d, want %d", round, tr.Len(), len(pairs))
		}
		for range 20 {
			rk := randomTopicKey(r, false)
			if got, want := matchSorted(tr, rk), naiveRoute(pairs, rk); !slices.Equal(got, want) {
				t.Fatalf("round %d: Match(%q) = %v, want %v; bindings %v", round, rk, got, want, pairs)
			}
		}
		for _, p := range pairs {
			tr.Remove(p.key, p.dest)
		}
		if tr.Len() != 0 || !tr.root.empty() || len(tr.ids) != 0 || len(tr.free) != len(tr.dests) {
			t.Fatalf("round %d: trie not empty after removing everything", round)
		}
	}
}

// FuzzTopicMatch checks the trie against the naive matcher. The input is a list of binding keys
// (one per line, the destination chosen by the line number), then a routing key after a line
// "--"; lines starting with '-' remove the key instead of adding it.
func FuzzTopicMatch(f *testing.F) {
	f.Add("a.b.c\n#\na.*\n--\na.b")
	f.Add("#.#\n*.#\n#.*.#\n--\n")
	f.Add("a..b\n.\n*.*\n--\na..b")
	f.Add("#.a.#\n-#.a.#\na.#\n--\na")
	f.Add("stock.*.ibm\n#.error\nstock.#\n--\nstock.nyse.ibm")
	f.Fuzz(func(t *testing.T, in string) {
		spec, rk, ok := strings.Cut(in, "\n--\n")
		if !ok || len(in) > 512 {
			return
		}
		lines := strings.Split(spec, "\n")
		if len(lines) > 32 {
			return
		}
		// Bound the naive matcher's backtracking.
		if strings.Count(spec, "#") > 24 || strings.Count(rk, ".") > 24 {
			return
		}
		tr := NewTopic()
		var pairs []topicPair
		for i, line := range lines {
			if k, ok := strings.CutPrefix(line, "-"); ok {
				// Remove the first pair with that key.
				if j := slices.IndexFunc(pairs, func(p topicPair) bool { return p.key == k }); j >= 0 {
					if !tr.Remove(pairs[j].key, pairs[j].dest) {
						t.Fatalf("Remove(%q, %v) = false", pairs[j].key, pairs[j].dest)
					}
					pairs = slices.Delete(pairs, j, j+1)
				}
				continue
			}
			// Keys with a "#" also go to twelve shared destinations, so that results pass 32
			// and take the bitset path.
			dests := []Destination{q(fmt.Sprint(i % 3))}
			if strings.Contains(line, "#") {
				for j := range 12 {
					dests = append(dests, q(fmt.Sprintf("h%d", j)))
				}
			}
			for _, d := range dests {
				p := topicPair{line, d}
				if added := tr.Add(p.key, p.dest); added == slices.Contains(pairs, p) {
					t.Fatalf("Add(%q, %v) = %v", p.key, p.dest, added)
				}
				if !slices.Contains(pairs, p) {
					pairs = append(pairs, p)
				}
			}
		}
		if tr.Len() != len(pairs) {
			t.Fatalf("Len = %d, want %d", tr.Len(), len(pairs))
		}
		got := matchSorted(tr, rk)
		if want := naiveRoute(pairs, rk); !slices.Equal(got, want) {
			t.Fatalf("Match(%q) = %v, want %v; bindings %q", rk, got, want, lines)
		}
	})
}
