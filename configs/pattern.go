package configs

import (
	"fmt"

	"github.com/gobwas/glob"
)

// Pattern is a compiled permission or policy pattern: a glob matched against the whole
// name, with no separators, so "*" matches any run of characters including dots, "?" any
// one character, "{a,b}" either alternative and "[a-z]" a class; "\" escapes the next
// character. The empty pattern matches nothing, not even the empty name.
type Pattern struct {
	src string
	all bool          // "*": matches everything without running the glob
	g   *glob.Pattern // nil for the empty pattern
}

// CompilePattern compiles a permission or policy pattern (see Pattern).
func CompilePattern(p string) (*Pattern, error) {
	switch p {
	case "":
		return &Pattern{}, nil
	case "*":
		return &Pattern{src: p, all: true}, nil
	}
	g, err := glob.Compile(p)
	if err != nil {
		return nil, fmt.Errorf("pattern %q: %w", p, err)
	}
	return &Pattern{src: p, g: g}, nil
}

// Match reports whether the pattern matches all of name. A nil pattern matches nothing.
func (p *Pattern) Match(name string) bool {
	return p != nil && (p.all || (p.g != nil && p.g.Match(name)))
}

// String is the pattern's source.
func (p *Pattern) String() string {
	if p == nil {
		return ""
	}
	return p.src
}
