package server

import (
	"testing"

	"github.com/warrenmq/warren/configs"
	"github.com/warrenmq/warren/store"
)

// Every max-message-size the broker file accepts is one the store can persist (a persistent
// message, or a transient one paged out, is one store record), and a Config set past the
// store's limit by an embedder is lowered to it rather than accepting bodies it cannot keep.
func TestMaxMessageSizeFitsTheStore(t *testing.T) {
	if configs.MaxMaxMessageSize > store.MaxBody {
		t.Fatalf("configs allows max-message-size %d, the store holds bodies up to %d", configs.MaxMaxMessageSize, store.MaxBody)
	}
	c := Config{MaxMessageSize: 64 << 20}
	c.setDefaults()
	if c.MaxMessageSize != store.MaxBody {
		t.Fatalf("MaxMessageSize 64 MiB became %d, want store.MaxBody %d", c.MaxMessageSize, store.MaxBody)
	}
	c = Config{}
	c.setDefaults()
	if c.MaxMessageSize != DefaultMaxMessageSize {
		t.Fatalf("default MaxMessageSize %d, want %d", c.MaxMessageSize, DefaultMaxMessageSize)
	}
}
