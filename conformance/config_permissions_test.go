package conformance

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// testConfigPasswd checks `warren passwd`: the hash it prints (from an argument or from stdin)
// is RabbitMQ's rabbit_password_hashing_sha256 of the password with a fresh salt, and a user
// defined with it logs in with that password. With users in the definitions, exactly those
// users exist: the built-in guest is gone.
func testConfigPasswd(t *testing.T, bin string) {
	const password = "s3cret pass"
	fromArg := runWarren(t, bin, "", "", "passwd", password)
	if fromArg.code != 0 {
		t.Fatalf("warren passwd failed:\n%v", fromArg)
	}
	hash := strings.TrimSpace(fromArg.stdout)
	checkPasswordHash(t, "warren passwd "+password, hash, password)

	fromStdin := runWarren(t, bin, "", "typed on stdin\n", "passwd")
	if fromStdin.code != 0 {
		t.Fatalf("warren passwd with the password on stdin failed:\n%v", fromStdin)
	}
	checkPasswordHash(t, "warren passwd < stdin", strings.TrimSpace(fromStdin.stdout), "typed on stdin")

	again := runWarren(t, bin, "", "", "passwd", password)
	if h := strings.TrimSpace(again.stdout); h == hash {
		t.Errorf("warren passwd printed %s twice for the same password: the salt is not random", h)
	}

	b := startCfgBroker(t, bin, dedent(fmt.Sprintf(`
		users:
		  - name: ops
		    password-hash: %q
		    tags: [administrator]
		permissions:
		  - {user: ops, vhost: /, configure: "*", write: "*", read: "*"}
	`, hash)))
	conn := b.dial("ops", password, "/")
	ch := channel(t, conn)
	q, err := ch.QueueDeclare("passwd.q", false, false, false, false, nil)
	if err != nil {
		t.Fatalf("ops declares a queue: %v", err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirmPublish(t, ch, "", q.Name, amqp.Publishing{Body: []byte("by ops")})
	if d := get(t, ch, q.Name, true); string(d.Body) != "by ops" {
		t.Errorf("ops got %q back, want %q", d.Body, "by ops")
	}

	for _, c := range []struct{ what, user, password string }{
		{"ops with a wrong password", "ops", password + "x"},
		{"guest/guest, not in the definitions' users", "guest", "guest"},
	} {
		wantLoginRefused(t, b.url(c.user, c.password, "/"), c.what)
	}
}

// checkPasswordHash asserts that hash is base64(salt + sha256(salt + password)) with a 4-byte
// salt.
func checkPasswordHash(t *testing.T, what, hash, password string) {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(hash)
	if err != nil {
		t.Fatalf("%s printed %q, not base64: %v", what, hash, err)
	}
	if len(raw) != 4+sha256.Size {
		t.Fatalf("%s printed %d bytes (base64 %q), want a 4-byte salt and a SHA-256 digest (36 bytes)", what, len(raw), hash)
	}
	salt, sum := raw[:4], raw[4:]
	want := sha256.Sum256(append(append([]byte(nil), salt...), password...))
	if !bytes.Equal(sum, want[:]) {
		t.Errorf("%s printed %q: the digest is not sha256(salt + %q)", what, hash, password)
	}
}

// wantLoginRefused expects the handshake at url to fail with 403 ACCESS_REFUSED. amqp091-go
// reports 403 whether the broker closes with 403 or drops the connection after start-ok.
func wantLoginRefused(t *testing.T, url, what string) {
	t.Helper()
	conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(timeout)})
	if err == nil {
		_ = conn.Close()
		t.Errorf("%s: logged in, want 403 ACCESS_REFUSED", what)
		return
	}
	var aerr *amqp.Error
	if !errors.As(err, &aerr) || aerr.Code != amqp.AccessRefused {
		t.Errorf("%s: %v, want 403 ACCESS_REFUSED", what, err)
	}
}

// wantVhostRefused expects connection.open at url to fail with 530 and exactly text.
func wantVhostRefused(t *testing.T, url, what, text string) {
	t.Helper()
	conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(timeout)})
	if err == nil {
		_ = conn.Close()
		t.Errorf("%s: connection.open succeeded, want 530 %q", what, text)
		return
	}
	var aerr *amqp.Error
	if !errors.As(err, &aerr) || aerr.Code != amqp.NotAllowed || aerr.Reason != text {
		t.Errorf("%s: %v, want 530 %q", what, err, text)
	}
}

// permsDefs gives app, in /shop, configure on app.*, write on app.* and w.*, read on app.* and
// r.*; the exchanges and queues named w.*, r.* and n.* (nothing) exist, w.x routes "k" to r.q.
// guest has everything on / and /shop; /other exists but app has no permission there.
func permsDefs() string {
	return dedent(fmt.Sprintf(`
		vhosts:
		  - name: /
		  - name: /shop
		  - name: /other
		users:
		  - name: guest
		    password-hash: %q
		    tags: [administrator]
		  - name: app
		    password-hash: %q
		permissions:
		  - {user: guest, vhost: /, configure: "*", write: "*", read: "*"}
		  - {user: guest, vhost: /shop, configure: "*", write: "*", read: "*"}
		  - {user: app, vhost: /shop, configure: "app.*", write: "{app,w}.*", read: "{app,r}.*"}
		exchanges:
		  - {name: w.x, vhost: /shop, type: direct, durable: true}
		  - {name: r.x, vhost: /shop, type: direct, durable: true}
		  - {name: n.x, vhost: /shop, type: direct, durable: true}
		queues:
		  - {name: w.q, vhost: /shop, durable: true}
		  - {name: r.q, vhost: /shop, durable: true}
		  - {name: n.q, vhost: /shop, durable: true}
		bindings:
		  - {vhost: /shop, source: w.x, destination: r.q, destination-type: queue, routing-key: k}
	`, passwordHash("guest"), passwordHash("secret")))
}

// testConfigPermissions checks the configure, write and read permissions from a definitions
// file over real connections, with RabbitMQ 3.10's reply codes and texts (checked against it),
// each refusal next to an allowed operation of the same kind; and vhost access and logins.
func testConfigPermissions(t *testing.T, bin string) {
	b := startCfgBroker(t, bin, permsDefs())

	// Logins and vhost access.
	wantChannelOK(t, b.dial("guest", "guest", "/"), "guest from loopback declares a queue on /", func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclare("perm.guest", false, false, true, false, nil)
		return err
	})
	wantLoginRefused(t, b.url("app", "wrong", "/shop"), "app with a wrong password")
	wantLoginRefused(t, b.url("nobody", "secret", "/shop"), "an undefined user")
	wantVhostRefused(t, b.url("app", "secret", "/other"), "app on /other, where it has no permissions",
		"NOT_ALLOWED - access to vhost '/other' refused for user 'app'")
	wantVhostRefused(t, b.url("app", "secret", "/"), "app on /, where it has no permissions",
		"NOT_ALLOWED - access to vhost '/' refused for user 'app'")
	wantVhostRefused(t, b.url("app", "secret", "/nope"), "app on an undefined vhost",
		"NOT_ALLOWED - vhost /nope not found")
	app := b.dial("app", "secret", "/shop")

	refused := func(kind, name string) string {
		return fmt.Sprintf("ACCESS_REFUSED - access to %s '%s' in vhost '/shop' refused for user 'app'", kind, name)
	}
	declareQ := func(name string) func(*amqp.Channel) error {
		return func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare(name, false, false, false, false, nil)
			return err
		}
	}
	declareX := func(name string) func(*amqp.Channel) error {
		return func(ch *amqp.Channel) error {
			return ch.ExchangeDeclare(name, amqp.ExchangeDirect, false, false, false, false, nil)
		}
	}

	t.Run("configure", func(t *testing.T) {
		wantChannelOK(t, app, "declare queue app.q", declareQ("app.q"))
		wantChannelOK(t, app, "declare queue app.gone", declareQ("app.gone"))
		wantChannelClosedBy(t, app, "declare queue x.q", 403, refused("queue", "x.q"), declareQ("x.q"))
		wantChannelClosedBy(t, app, "redeclare queue w.q (write only)", 403, refused("queue", "w.q"), func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare("w.q", true, false, false, false, nil)
			return err
		})
		wantChannelOK(t, app, "declare exchange app.x", declareX("app.x"))
		wantChannelOK(t, app, "declare exchange app.x-gone", declareX("app.x-gone"))
		wantChannelClosedBy(t, app, "declare exchange x.x", 403, refused("exchange", "x.x"), declareX("x.x"))

		// Passive declares need no permission.
		wantChannelOK(t, app, "passive declare of queue n.q", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclarePassive("n.q", true, false, false, false, nil)
			return err
		})
		wantChannelOK(t, app, "passive declare of exchange n.x", func(ch *amqp.Channel) error {
			return ch.ExchangeDeclarePassive("n.x", amqp.ExchangeDirect, true, false, false, false, nil)
		})

		// Deletes need configure, checked before the queue is looked up.
		wantChannelOK(t, app, "delete queue app.gone", func(ch *amqp.Channel) error {
			_, err := ch.QueueDelete("app.gone", false, false, false)
			return err
		})
		wantChannelClosedBy(t, app, "delete queue n.q", 403, refused("queue", "n.q"), func(ch *amqp.Channel) error {
			_, err := ch.QueueDelete("n.q", false, false, false)
			return err
		})
		wantChannelClosedBy(t, app, "delete undefined queue n.missing", 403, refused("queue", "n.missing"), func(ch *amqp.Channel) error {
			_, err := ch.QueueDelete("n.missing", false, false, false)
			return err
		})
		wantChannelOK(t, app, "delete exchange app.x-gone", func(ch *amqp.Channel) error {
			return ch.ExchangeDelete("app.x-gone", false, false)
		})
		wantChannelClosedBy(t, app, "delete exchange n.x", 403, refused("exchange", "n.x"), func(ch *amqp.Channel) error {
			return ch.ExchangeDelete("n.x", false, false)
		})

		// A server-named queue is amq.gen-…, which app.* does not match.
		ch := channel(t, app)
		_, err := ch.QueueDeclare("", false, false, true, false, nil)
		var aerr *amqp.Error
		if !errors.As(err, &aerr) || aerr.Code != 403 || !strings.HasPrefix(aerr.Reason, "ACCESS_REFUSED - access to queue 'amq.gen-") ||
			!strings.HasSuffix(aerr.Reason, "' in vhost '/shop' refused for user 'app'") {
			t.Errorf("declare a server-named queue: %v, want 403 ACCESS_REFUSED - access to queue 'amq.gen-…' in vhost '/shop' refused for user 'app'", err)
		}

		// What app could not do did not happen.
		g := dialConfig(t, b.url("guest", "guest", "/shop"), amqp.Config{})
		for _, q := range []string{"n.q", "w.q"} {
			if _, ok := passiveQueue(t, g, q); !ok {
				t.Errorf("queue %s is gone after app was refused its deletion", q)
			}
		}
		for _, q := range []string{"x.q", "app.gone"} {
			if _, ok := passiveQueue(t, g, q); ok {
				t.Errorf("queue %s exists, want it never declared or deleted", q)
			}
		}
	})

	t.Run("write", func(t *testing.T) {
		publish := func(exchange, key string) func(*amqp.Channel) error {
			return func(ch *amqp.Channel) error {
				if err := ch.Confirm(false); err != nil {
					return err
				}
				dc, err := ch.PublishWithDeferredConfirm(exchange, key, false, false, amqp.Publishing{Body: []byte("via " + exchange)})
				if err != nil {
					return err
				}
				if ok, err := dc.WaitContext(t.Context()); err != nil || !ok {
					return fmt.Errorf("confirm: acked=%v, %v", ok, err)
				}
				return nil
			}
		}
		// wantChannelOK's round trip after the confirm would see an asynchronous refusal.
		wantChannelOK(t, app, "publish to w.x", publish("w.x", "k"))
		wantChannelClosedBy(t, app, "publish to n.x", 403, refused("exchange", "n.x"), publish("n.x", "k"))
		wantChannelClosedBy(t, app, "publish to the default exchange", 403, refused("exchange", "amq.default"), publish("", "app.q"))

		// queue.bind needs write on the queue and read on the exchange.
		bindOp := func(queue, exchange string) func(*amqp.Channel) error {
			return func(ch *amqp.Channel) error { return ch.QueueBind(queue, "k", exchange, false, nil) }
		}
		wantChannelOK(t, app, "bind w.q to r.x", bindOp("w.q", "r.x"))
		wantChannelOK(t, app, "bind app.q to r.x", bindOp("app.q", "r.x"))
		wantChannelClosedBy(t, app, "bind n.q (no write) to r.x", 403, refused("queue", "n.q"), bindOp("n.q", "r.x"))
		wantChannelClosedBy(t, app, "bind w.q to n.x (no read)", 403, refused("exchange", "n.x"), bindOp("w.q", "n.x"))
		wantChannelClosedBy(t, app, "bind r.q (read only) to r.x", 403, refused("queue", "r.q"), bindOp("r.q", "r.x"))
	})

	t.Run("read", func(t *testing.T) {
		// r.q holds the message published to w.x above.
		wantChannelOK(t, app, "basic.get from r.q", func(ch *amqp.Channel) error {
			d, ok, err := ch.Get("r.q", true)
			if err == nil && (!ok || string(d.Body) != "via w.x") {
				err = fmt.Errorf("got %q (ok=%v), want the message published to w.x", d.Body, ok)
			}
			return err
		})
		wantChannelClosedBy(t, app, "basic.get from n.q", 403, refused("queue", "n.q"), func(ch *amqp.Channel) error {
			_, _, err := ch.Get("n.q", true)
			return err
		})
		wantChannelClosedBy(t, app, "basic.get from w.q (write only)", 403, refused("queue", "w.q"), func(ch *amqp.Channel) error {
			_, _, err := ch.Get("w.q", true)
			return err
		})
		wantChannelOK(t, app, "basic.consume from r.q", func(ch *amqp.Channel) error {
			_, err := ch.Consume("r.q", "", false, false, false, false, nil)
			return err
		})
		wantChannelClosedBy(t, app, "basic.consume from n.q", 403, refused("queue", "n.q"), func(ch *amqp.Channel) error {
			_, err := ch.Consume("n.q", "", false, false, false, false, nil)
			return err
		})
		wantChannelOK(t, app, "queue.purge of r.q", func(ch *amqp.Channel) error {
			_, err := ch.QueuePurge("r.q", false)
			return err
		})
		wantChannelClosedBy(t, app, "queue.purge of n.q", 403, refused("queue", "n.q"), func(ch *amqp.Channel) error {
			_, err := ch.QueuePurge("n.q", false)
			return err
		})
	})
}
