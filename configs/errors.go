package configs

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Pos is a position in a file: 1-based line and column. Line 0 means the whole file.
type Pos struct {
	File      string
	Line, Col int
	// Item is the path of the list item the position starts, as in bindings[0]; problems
	// found across items (a reference, a duplicate) are reported with it as their path.
	Item string
}

// String is "file:line:col", or the file alone when the position has no line ("file:line"
// when it has a line but no column, as for YAML syntax errors).
func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	if p.Col == 0 {
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Error is one problem in a file. Path names the offending key from the document's root,
// such as queues[2].arguments.x-max-length or listeners[0].tls.cert-file; it is empty when
// the problem is not about one key (a YAML syntax error, a whole item).
type Error struct {
	Pos  Pos
	Path string
	Msg  string
}

// Error is "<file>:<line>:<col>: <path>: <msg>", without "<path>: " when Path is empty.
// A problem with no position at all (definitions built in code) starts with the path.
func (e *Error) Error() string {
	s := e.Msg
	if e.Path != "" {
		s = e.Path + ": " + s
	}
	if pos := e.Pos.String(); pos != "" {
		s = pos + ": " + s
	}
	return s
}

// ErrorList is every problem found in one load or validation, sorted by file, line and
// column. Functions of this package return it as their error when it is not empty.
type ErrorList []*Error

// Error is one problem per line.
func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// sort orders the list by file, line and column, keeping the order of problems found at
// the same position.
func (l ErrorList) sort() {
	slices.SortStableFunc(l, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Pos.File, b.Pos.File), cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Col, b.Pos.Col))
	})
}

// err returns the sorted list as an error, or nil when it is empty.
func (l ErrorList) err() error {
	if len(l) == 0 {
		return nil
	}
	l.sort()
	return l
}

// add appends the problems of err: an ErrorList or *Error is merged, anything else becomes
// an Error at pos.
func (l *ErrorList) add(pos Pos, err error) {
	var list ErrorList
	var one *Error
	switch {
	case err == nil:
	case errors.As(err, &list):
		*l = append(*l, list...)
	case errors.As(err, &one):
		*l = append(*l, one)
	default:
		*l = append(*l, &Error{Pos: pos, Msg: err.Error()})
	}
}
