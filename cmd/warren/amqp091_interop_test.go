//go:build interop

package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestAmqp091GoIntegrationSuite runs amqp091-go's own integration tests (the module's
// `-tags integration` suite, the version in go.mod, unchanged) against the real binary: its
// 200 protocol tests and its connection-recovery tests, which close connections through
// DELETE /api/connections/{name} on localhost:15672, the management API's fixed port in that
// suite. The broker presents itself as RabbitMQ 3.10.8, because several of the suite's tests
// check their assertions only against a server whose product is "RabbitMQ".
func TestAmqp091GoIntegrationSuite(t *testing.T) {
	const mgmt = "127.0.0.1:15672"
	if ln, err := net.Listen("tcp", mgmt); err != nil {
		t.Fatalf("amqp091-go's recovery tests need the management API on %s, which is busy: %v", mgmt, err)
	} else {
		_ = ln.Close()
	}
	_, addr, lines := startBroker(t, "--management-listen", mgmt, "--product-name", "RabbitMQ", "--product-version", "3.10.8")
	go func() {
		for range lines {
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "test", "-tags", "integration", "-count=1", "github.com/rabbitmq/amqp091-go")
	cmd.Env = append(os.Environ(), "AMQP_URL=amqp://guest:guest@"+addr+"/")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("amqp091-go's integration suite against Warren: %v\n%s", err, tail(out, 20000))
	}
}

// tail is the last n bytes of b.
func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
