// Command gen generates amqpwire/methods_gen.go from the AMQP 0-9-1
// specification XML:
//
//	go run ./internal/gen -spec spec/amqp0-9-1.stripped.extended.xml -out methods_gen.go
//
// (run from amqpwire/, as its go:generate line does). The spec XML is vendored
// in amqpwire/spec/, its BSD licence in the file's header comment. The additions
// in amqpgen/extras.xml are merged into the specification first.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/warrenmq/warren/amqpwire/internal/gen/amqpgen"
)

func main() {
	specPath := flag.String("spec", "", "specification XML")
	outPath := flag.String("out", "methods_gen.go", "output Go file")
	flag.Parse()
	if err := run(*specPath, *outPath); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(specPath, outPath string) error {
	if specPath == "" {
		return fmt.Errorf("-spec is required")
	}
	specXML, err := os.ReadFile(specPath)
	if err != nil {
		return err
	}
	spec, err := amqpgen.Parse(specXML, amqpgen.Extras)
	if err != nil {
		return fmt.Errorf("parse %s: %w", specPath, err)
	}
	src, err := amqpgen.Generate(spec)
	if err != nil {
		return fmt.Errorf("generate from %s: %w", specPath, err)
	}
	if err := os.WriteFile(outPath, src, 0o644); err != nil {
		return fmt.Errorf("write generated code: %w", err)
	}
	return nil
}
