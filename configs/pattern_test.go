package configs

import "testing"

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
