package configs

import (
	"errors"
	"testing"
)

func TestPosAndErrorStrings(t *testing.T) {
	for _, c := range []struct {
		err  *Error
		want string
	}{
		{&Error{Pos: Pos{File: "defs.yaml", Line: 12, Col: 5}, Path: "queues[2].arguments.x-max-length", Msg: `expected an integer, got "ten"`},
			`defs.yaml:12:5: queues[2].arguments.x-max-length: expected an integer, got "ten"`},
		{&Error{Pos: Pos{File: "warren.yaml", Line: 3, Col: 7}, Msg: "at least one listener is required"},
			"warren.yaml:3:7: at least one listener is required"},
		{&Error{Pos: Pos{File: "defs.yaml"}, Msg: "cannot read the definitions"}, "defs.yaml: cannot read the definitions"},
		{&Error{Pos: Pos{File: "defs.yaml", Line: 4, Col: 0}, Msg: "syntax error: x"}, "defs.yaml:4: syntax error: x"},
		{&Error{Path: "arguments.x-max-length", Msg: "x-max-length -1 is below the minimum of 0"}, "arguments.x-max-length: x-max-length -1 is below the minimum of 0"},
	} {
		if got := c.err.Error(); got != c.want {
			t.Errorf("got  %s\nwant %s", got, c.want)
		}
	}
}

func TestErrorListSortsByFileLineCol(t *testing.T) {
	l := ErrorList{
		{Pos: Pos{File: "b.yaml", Line: 1, Col: 1}, Msg: "b1"},
		{Pos: Pos{File: "a.yaml", Line: 10, Col: 2}, Msg: "a10"},
		{Pos: Pos{File: "a.yaml", Line: 2, Col: 9}, Msg: "a2.9"},
		{Pos: Pos{File: "a.yaml", Line: 2, Col: 3}, Msg: "a2.3"},
	}
	err := l.err()
	want := "a.yaml:2:3: a2.3\na.yaml:2:9: a2.9\na.yaml:10:2: a10\nb.yaml:1:1: b1"
	if err.Error() != want {
		t.Errorf("got\n%s\nwant\n%s", err, want)
	}
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 4 {
		t.Errorf("errors.As gives %v", list)
	}
	if (ErrorList{}).err() != nil {
		t.Error("an empty list is an error")
	}
}

func TestYAMLSyntaxErrorHasFileAndLine(t *testing.T) {
	_, err := ParseDefinitions("defs.yaml", []byte("queues:\n  - name: a\n    durable: [true\n"))
	wantProblems(t, err, "defs.yaml:3: syntax error: did not find expected ',' or ']'")
	_, err = ParseDefinitions("defs.yaml", []byte("queues:\n  - name: a\n - name: b\n"))
	wantProblems(t, err, "defs.yaml:3: syntax error: did not find expected key")
	_, err = LoadBroker("testdata/does-not-exist.yaml")
	wantProblems(t, err, "testdata/does-not-exist.yaml: cannot read the configuration: open testdata/does-not-exist.yaml: no such file or directory")
	_, err = ParseDefinitions("defs.yaml", []byte("queues: []\n---\nqueues: []\n"))
	wantProblems(t, err, "defs.yaml:2:1: a file holds one YAML document, but a second one starts here")
}

func TestAliasesCannotLoopOrExplode(t *testing.T) {
	_, err := ParseDefinitions("defs.yaml", []byte("queues: [{name: a, arguments: &x {y: *x}}]\n"))
	wantProblems(t, err, "defs.yaml:1:38: alias *x refers to a node that contains it")
	_, err = ParseDefinitions("defs.yaml", []byte("queues: [&q {name: a, <<: *q}]\n"))
	wantProblems(t, err, "defs.yaml:1:27: alias *q refers to a node that contains it")
	laughs := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	for i := 'b'; i <= 'h'; i++ {
		p := string(i - 1)
		laughs += string(i) + ": &" + string(i) + " [*" + p + ", *" + p + ", *" + p + ", *" + p + ", *" + p + ", *" + p + ", *" + p + ", *" + p + ", *" + p + ", *" + p + "]\n"
	}
	_, err = ParseBroker("warren.yaml", []byte(laughs))
	wantProblems(t, err, "warren.yaml:6:4: the document expands to more than 1048576 nodes through its aliases")
}
