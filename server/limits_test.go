package server

import (
	"testing"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/configs"
	"github.com/warrenmq/warren/server/queue"
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

// The queue-memory window set in Config (the broker file's queue-memory) is the window of
// the queues of every vhost, "/" and those recovered from the store, zero fields take the
// defaults, and the memory alarm's paging shrinks it and gives it back.
func TestQueueMemoryIsEveryQueuesWindow(t *testing.T) {
	for _, c := range []struct {
		in   QueueMemory
		want queue.Window
	}{
		{QueueMemory{Messages: 16, Bytes: 1 << 30}, queue.Window{Count: 16, Bytes: 1 << 30}},
		{QueueMemory{Messages: 100_000, Bytes: 1000}, queue.Window{Count: 100_000, Bytes: 1000}},
		{QueueMemory{}, queue.Window{Count: DefaultQueueMemoryMessages, Bytes: DefaultQueueMemoryBytes}},
	} {
		srv := New(Config{Logger: zerolog.Nop(), QueueMemory: c.in})
		window := func(vh string) queue.Window { return srv.vhostFor(vh).Window() }
		for _, vh := range []string{"/", "recovered"} {
			if got := window(vh); got != c.want {
				t.Errorf("QueueMemory %+v: vhost %q window %+v, want %+v", c.in, vh, got, c.want)
			}
		}
		srv.res.setPaging(true)
		paging := queue.Window{Count: min(c.want.Count, pressureWindow.Count), Bytes: min(c.want.Bytes, pressureWindow.Bytes)}
		if got := window("/"); got != paging {
			t.Errorf("QueueMemory %+v: window while paging %+v, want %+v", c.in, got, paging)
		}
		srv.res.setPaging(false)
		if got := window("/"); got != c.want {
			t.Errorf("QueueMemory %+v: window after paging %+v, want %+v", c.in, got, c.want)
		}
	}
}
