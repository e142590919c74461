package configs

import (
	"regexp"
	"testing"
)

func TestCompilePatternMatchesWholeNames(t *testing.T) {
	for _, c := range []struct {
		pattern string
		yes, no []string
	}{
		{"*", []string{"", "a", "a.b.c"}, nil},
		{"orders.*", []string{"orders.", "orders.eu.paid"}, []string{"orders", "my.orders.x"}},
		{"app*", []string{"app", "app.x"}, []string{"myapp"}},
		{"{a,b}.q", []string{"a.q", "b.q"}, []string{"c.q", "a.qq"}},
		{"q?", []string{"q1"}, []string{"q", "q12"}},
		{"[a-c]x", []string{"bx"}, []string{"dx"}},
		{`a\*`, []string{"a*"}, []string{"ab"}},
		{"", nil, []string{"", "a", "amq.default"}},
	} {
		p, err := CompilePattern(c.pattern)
		if err != nil {
			t.Fatalf("%q: %v", c.pattern, err)
		}
		for _, s := range c.yes {
			if !p.Match(s) {
				t.Errorf("%q does not match %q", c.pattern, s)
			}
		}
		for _, s := range c.no {
			if p.Match(s) {
				t.Errorf("%q matches %q", c.pattern, s)
			}
		}
		if p.String() != c.pattern {
			t.Errorf("String() = %q", p.String())
		}
	}
	if _, err := CompilePattern("[a"); err == nil || err.Error() != `pattern "[a": glob: syntax error at 2: unexpected end of input` {
		t.Errorf("bad pattern: %v", err)
	}
}

func TestGlobToRegexMatchesTheSameNames(t *testing.T) {
	names := []string{"a", "foo", "foo.bar", "foobar", "xfoo", "a,b", "b", "ab", "q1", "q.1"}
	for _, g := range []string{"*", "", "foo*", "*foo*", "foo.bar", "?", "{a,b}", "q[0-9]", "a\\*b", "a?b"} {
		p, err := CompilePattern(g)
		if err != nil {
			t.Fatal(err)
		}
		re := regexp.MustCompile(GlobToRegex(g))
		for _, n := range names {
			if p.Match(n) != re.MatchString(n) {
				t.Errorf("glob %q matches %q: %v, regex %q: %v", g, n, p.Match(n), GlobToRegex(g), re.MatchString(n))
			}
		}
		// and back: the regex translates to a glob that matches the same names
		if back, err := RegexToGlob(GlobToRegex(g)); err == nil {
			bp, err := CompilePattern(back)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range names {
				if bp.Match(n) != p.Match(n) {
					t.Errorf("glob %q -> %q -> %q differs on %q", g, GlobToRegex(g), back, n)
				}
			}
		}
	}
}
