package amqpwire

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/warrenmq/warren/amqpwire/internal/gen/amqpgen"
)

// specPath is the spec relative to this package's directory; CI clones the
// repository with shared/ beside it.
const specPath = "../../shared/spec/amqp0-9-1.stripped.extended.xml"

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
