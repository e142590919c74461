package server

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/configs"
)

// replyBroker runs a broker without a store on a loopback port.
func replyBroker(t *testing.T) (*Server, string) {
	t.Helper()
	srv := New(Config{Logger: zerolog.Nop()})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return srv, ln.Addr().String()
}

func replyEntries(srv *Server) int {
	n := 0
	srv.replies.m.Range(func(any, any) bool { n++; return true })
	return n
}

// replyCaller is a client with a reply consumer.
type replyCaller struct {
	conn    *amqp.Connection
	sock    net.Conn
	ch      *amqp.Channel
	replies <-chan amqp.Delivery
	name    string // the reply_to its requests carry
}

// replyClient dials addr and starts a reply consumer, and learns its name from a request to a
// queue of its own.
func replyClient(t *testing.T, addr string) *replyCaller {
	t.Helper()
	var sock net.Conn
	conn, err := amqp.DialConfig("amqp://guest:guest@"+addr+"/", amqp.Config{Dial: func(network, a string) (net.Conn, error) {
		c, err := net.Dial(network, a)
		sock = c
		return c, err
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	replies, err := ch.Consume(replyToQueue, "reply", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Publish("", q.Name, false, false, amqp.Publishing{ReplyTo: replyToQueue}); err != nil {
		t.Fatal(err)
	}
	for {
		d, ok, err := ch.Get(q.Name, true)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			return &replyCaller{conn: conn, sock: sock, ch: ch, replies: replies, name: d.ReplyTo}
		}
	}
}

// TestReplyRegistryForgetsEndedConsumers: the table behind reply names holds one entry per live
// reply consumer, and none once they are cancelled or their channel or connection is gone, even
// when the client vanishes without a close; and the name of each is its own.
func TestReplyRegistryForgetsEndedConsumers(t *testing.T) {
	srv, addr := replyBroker(t)
	names := map[string]bool{}
	var ends []func()
	for i := range 4 {
		c := replyClient(t, addr)
		conn, sock, ch, name := c.conn, c.sock, c.ch, c.name
		if !strings.HasPrefix(name, replyToPrefix) || names[name] {
			t.Fatalf("reply_to %q: want a fresh %s… name", name, replyToPrefix)
		}
		names[name] = true
		ends = append(ends, []func(){
			func() {
				if err := ch.Cancel("reply", false); err != nil {
					t.Fatal(err)
				}
			},
			func() { _ = ch.Close() },
			func() { _ = conn.Close() },
			func() { _ = sock.Close() }, // no connection.close: the server sees the socket end
		}[i])
	}
	if got := replyEntries(srv); got != 4 {
		t.Fatalf("%d entries with 4 live reply consumers, want 4", got)
	}
	for _, end := range ends[:3] {
		end()
	}
	// The first three are answered (cancel-ok, close-ok) after the entry is gone.
	if got := replyEntries(srv); got != 1 {
		t.Errorf("%d entries after 3 of 4 reply consumers ended, want 1", got)
	}
	ends[3]()
	deadline := time.Now().Add(5 * time.Second)
	for replyEntries(srv) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d entries 5s after the last client's socket closed, want 0", replyEntries(srv))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestReplyStaysInItsVhost: a reply published in another vhost does not reach the consumer,
// and is returned to a mandatory publisher there; the same reply from the consumer's vhost
// arrives.
func TestReplyStaysInItsVhost(t *testing.T) {
	srv, addr := replyBroker(t)
	srv.vhostFor("other")
	all, err := configs.CompilePattern("*")
	if err != nil {
		t.Fatal(err)
	}
	guest := DefaultAccess(nil)
	a, err := NewAccess(guest.Users(), append(guest.Grants(), Grant{User: "guest", Vhost: "other", Permissions: Permissions{Configure: all, Write: all, Read: all}}))
	if err != nil {
		t.Fatal(err)
	}
	srv.SetAccess(a)
	c := replyClient(t, addr)
	publish := func(vhost, body string) (returned bool) {
		t.Helper()
		conn, err := amqp.Dial("amqp://guest:guest@" + addr + "/" + vhost)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		returns := ch.NotifyReturn(make(chan amqp.Return, 1))
		if err := ch.Confirm(false); err != nil {
			t.Fatal(err)
		}
		dc, err := ch.PublishWithDeferredConfirm("", c.name, true, false, amqp.Publishing{Body: []byte(body)})
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := dc.WaitContext(context.Background()); !ok || err != nil {
			t.Fatalf("confirm: %v %v", ok, err)
		}
		select { // a return comes before its confirm
		case r := <-returns:
			return r.ReplyCode == amqp.NoRoute
		default:
			return false
		}
	}
	if !publish("other", "from other") {
		t.Errorf("a mandatory reply from vhost other was not returned")
	}
	if publish("", "from /") {
		t.Errorf("a mandatory reply from vhost / was returned")
	}
	// Written to the caller's socket in publish order: the first reply to arrive is the second.
	select {
	case d := <-c.replies:
		if string(d.Body) != "from /" {
			t.Errorf("reply %q reached the caller, want only the one from its vhost", d.Body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no reply from the caller's own vhost")
	}
}
