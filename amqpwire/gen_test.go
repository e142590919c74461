package amqpwire

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/warrenmq/warren/amqpwire/internal/gen/amqpgen"
)

// specPath is the spec vendored in the repository, relative to this package's
// directory, so that a fresh clone can generate and test without anything beside it.
const specPath = "spec/amqp0-9-1.stripped.extended.xml"

// TestGenerateReadsVendoredSpec checks that the go:generate line in doc.go
// reads the spec this test compares against, inside the repository.
func TestGenerateReadsVendoredSpec(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var line string
	for l := range strings.Lines(string(doc)) {
		if strings.HasPrefix(l, "//go:generate ") {
			line = strings.TrimSpace(l)
		}
	}
	if line == "" {
		t.Fatal("doc.go has no //go:generate line")
	}
	if !strings.Contains(line, " -spec "+specPath+" ") {
		t.Fatalf("doc.go's %q does not read -spec %s", line, specPath)
	}
}

// TestGeneratedFileIsFresh regenerates methods_gen.go in memory and in a
// temporary file through the generator command's code path, and fails if
// the committed file differs: run `go generate ./amqpwire` after changing
// the spec, the extras or the generator.
func TestGeneratedFileIsFresh(t *testing.T) {
	specXML, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatalf("read spec (expected at %s relative to amqpwire/): %v", specPath, err)
	}
	spec, err := amqpgen.Parse(specXML, amqpgen.Extras)
	if err != nil {
		t.Fatal(err)
	}
	src, err := amqpgen.Generate(spec)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(t.TempDir(), "methods_gen.go")
	if err := os.WriteFile(tmp, src, 0o644); err != nil {
		t.Fatal(err)
	}
	fresh, err := os.ReadFile(tmp)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile("methods_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh, committed) {
		t.Fatal("methods_gen.go is stale: run `go generate ./amqpwire` and commit the result")
	}
	if !bytes.HasPrefix(committed, []byte(amqpgen.Header+"\n")) {
		t.Fatalf("methods_gen.go does not start with %q", amqpgen.Header)
	}
}

// TestMethodIDConstants checks that methods_gen.go declares one exported id
// constant per method of the spec, Method<Class><Method> with the method's
// index, and one Class<Class> per class, so code can name a failed method
// (ClassBasic, MethodBasicPublish) instead of writing (60, 40).
func TestMethodIDConstants(t *testing.T) {
	specXML, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := amqpgen.Parse(specXML, amqpgen.Extras)
	if err != nil {
		t.Fatal(err)
	}
	file, err := parser.ParseFile(token.NewFileSet(), "methods_gen.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]string{} // name -> literal value
	for _, decl := range file.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok {
					consts[name.Name] = lit.Value
				}
			}
		}
	}
	want := map[string]string{}
	for _, c := range spec.Classes {
		want["Class"+amqpgen.GoName(c.Name)] = strconv.Itoa(c.Index)
		for _, m := range c.Methods {
			want["Method"+amqpgen.GoName(c.Name)+amqpgen.GoName(m.Name)] = strconv.Itoa(m.Index)
		}
	}
	for name, v := range want {
		if got, ok := consts[name]; !ok {
			t.Errorf("methods_gen.go has no constant %s", name)
		} else if got != v {
			t.Errorf("%s = %s, the spec says %s", name, got, v)
		}
	}
	for name := range consts {
		if strings.HasPrefix(name, "Method") && want[name] == "" {
			t.Errorf("methods_gen.go declares %s, which is no method of the spec", name)
		}
	}
	if n := len(allMethods()); len(want) != n+len(spec.Classes) {
		t.Errorf("the spec has %d methods and %d classes, the generated registry %d methods",
			len(want)-len(spec.Classes), len(spec.Classes), n)
	}
}
