package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/warrenmq/warren/amqpwire"
)

// leanConn is a minimal AMQP 0-9-1 client on Warren's codec (amqpwire) for --client lean: one
// channel, no heartbeats, blocking reads on the caller's goroutine, no goroutine per connection.
// It does on the client side what amqp091-go does for this benchmark at a fraction of the CPU,
// so that on a machine the load generator shares with the broker the figures say more about
// the broker. It works with any broker (RabbitMQ too).
type leanConn struct {
	nc       net.Conn
	r        *amqpwire.FrameReader
	w        *amqpwire.FrameWriter
	frameMax uint32
	header   amqpwire.ContentHeader
}

const leanChannel = 1

// leanDial connects to rawURL (amqp://user:password@host:port/vhost), logs in with PLAIN and
// opens channel 1. The connection is closed when ctx ends, which ends any blocked read.
func leanDial(ctx context.Context, rawURL string) (*leanConn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse URL: %w", err)
	}
	if u.Scheme != "amqp" {
		return nil, fmt.Errorf("--client lean speaks amqp:// only, not %q", u.Scheme)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "5672")
	}
	user, pass := "guest", "guest"
	if u.User != nil {
		user = u.User.Username()
		if p, ok := u.User.Password(); ok {
			pass = p
		}
	}
	vhost := strings.TrimPrefix(u.Path, "/")
	if vhost == "" {
		vhost = "/"
	}
	nc, err := net.DialTimeout("tcp", host, 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", host, err)
	}
	go func() {
		<-ctx.Done()
		_ = nc.Close()
	}()
	c := &leanConn{nc: nc, r: amqpwire.NewFrameReader(nc, 0), w: amqpwire.NewFrameWriter(nc)}
	if err := c.handshake(user, pass, vhost); err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("AMQP handshake with %s: %w", host, err)
	}
	return c, nil
}

func (c *leanConn) handshake(user, pass, vhost string) error {
	if _, err := c.nc.Write([]byte{'A', 'M', 'Q', 'P', 0, 0, 9, 1}); err != nil {
		return fmt.Errorf("write protocol header: %w", err)
	}
	if _, err := c.expect(0, "connection.start"); err != nil {
		return err
	}
	props, err := amqpwire.NewTable(map[string]any{"product": "warren-rpc-perf"})
	if err != nil {
		return fmt.Errorf("client properties: %w", err)
	}
	c.send(0, &amqpwire.ConnectionStartOk{ClientProperties: props, Mechanism: "PLAIN",
		Response: "\x00" + user + "\x00" + pass, Locale: "en_US"})
	if err := c.flush(); err != nil {
		return err
	}
	m, err := c.expect(0, "connection.tune")
	if err != nil {
		return err
	}
	tune, ok := m.(*amqpwire.ConnectionTune)
	if !ok {
		return fmt.Errorf("got %s, want connection.tune", m.MethodName())
	}
	c.frameMax = 131072
	if tune.FrameMax != 0 && tune.FrameMax < c.frameMax {
		c.frameMax = tune.FrameMax
	}
	c.send(0, &amqpwire.ConnectionTuneOk{ChannelMax: 1, FrameMax: c.frameMax, Heartbeat: 0})
	c.send(0, &amqpwire.ConnectionOpen{VirtualHost: vhost})
	if err := c.flush(); err != nil {
		return err
	}
	if _, err := c.expect(0, "connection.open-ok"); err != nil {
		return err
	}
	c.send(leanChannel, &amqpwire.ChannelOpen{})
	if err := c.flush(); err != nil {
		return err
	}
	_, err = c.expect(leanChannel, "channel.open-ok")
	return err
}

func (c *leanConn) send(channel uint16, m amqpwire.Method) { c.w.WriteMethod(channel, m) }

func (c *leanConn) flush() error {
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// expect reads the next method on channel, which must be the reply named want; a close from
// the broker is an error with its code and text.
func (c *leanConn) expect(channel uint16, want string) (amqpwire.Method, error) {
	for {
		f, err := c.r.ReadFrame()
		if err != nil {
			return nil, fmt.Errorf("waiting for %s: %w", want, err)
		}
		if f.Type != amqpwire.FrameMethod {
			continue
		}
		m, err := amqpwire.DecodeMethod(f.Payload)
		if err != nil {
			return nil, fmt.Errorf("waiting for %s: %w", want, err)
		}
		switch m := m.(type) {
		case *amqpwire.ConnectionClose:
			return nil, fmt.Errorf("connection closed by the broker: %d %s", m.ReplyCode, m.ReplyText)
		case *amqpwire.ChannelClose:
			return nil, fmt.Errorf("channel closed by the broker: %d %s", m.ReplyCode, m.ReplyText)
		}
		if f.Channel == channel && m.MethodName() == want {
			return m, nil
		}
	}
}

// declare declares a non-durable auto-delete queue.
func (c *leanConn) declare(queue string) error {
	c.send(leanChannel, &amqpwire.QueueDeclare{Queue: queue, AutoDelete: true})
	if err := c.flush(); err != nil {
		return err
	}
	_, err := c.expect(leanChannel, "queue.declare-ok")
	return err
}

// consume starts a no-ack consumer.
func (c *leanConn) consume(queue string) error {
	c.send(leanChannel, &amqpwire.BasicConsume{Queue: queue, NoAck: true})
	if err := c.flush(); err != nil {
		return err
	}
	_, err := c.expect(leanChannel, "basic.consume-ok")
	return err
}

// publish sends one message through the default exchange and flushes it.
func (c *leanConn) publish(key string, props *amqpwire.Properties, body []byte) error {
	c.w.WriteMethod(leanChannel, &amqpwire.BasicPublish{RoutingKey: key})
	c.w.WriteContent(leanChannel, amqpwire.ClassBasic, props, body, c.frameMax)
	return c.flush()
}

// next reads the next delivery and returns its properties (valid until the next call); the
// body is read and dropped.
func (c *leanConn) next() (*amqpwire.Properties, error) {
	if _, err := c.expect(leanChannel, "basic.deliver"); err != nil {
		return nil, err
	}
	f, err := c.r.ReadFrame()
	if err != nil {
		return nil, fmt.Errorf("read content header: %w", err)
	}
	if f.Type != amqpwire.FrameHeader {
		return nil, errors.New("basic.deliver without its content header")
	}
	if err := c.header.Decode(f.Payload); err != nil {
		return nil, fmt.Errorf("content header: %w", err)
	}
	for left := c.header.BodySize; left > 0; {
		f, err := c.r.ReadFrame()
		if err != nil {
			return nil, fmt.Errorf("read body: %w", err)
		}
		if f.Type != amqpwire.FrameBody || uint64(len(f.Payload)) > left {
			return nil, errors.New("content body does not match its header")
		}
		left -= uint64(len(f.Payload))
	}
	return &c.header.Properties, nil
}

// leanServe answers every request on c with a reply to its reply_to.
func leanServe(ctx context.Context, c *leanConn, body []byte) error {
	var reply amqpwire.Properties
	for {
		req, err := c.next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("server: %w", err)
		}
		reply.Flags, reply.CorrelationID = amqpwire.FlagCorrelationID, req.CorrelationID
		if err := c.publish(req.ReplyTo, &reply, body); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("server: publish reply: %w", err)
		}
	}
}

// leanRoundTrip returns a caller's round trip on c: a request with reply_to
// amq.rabbitmq.reply-to, then its reply.
func leanRoundTrip(c *leanConn, queue string, body []byte) func(ctx context.Context, id string) error {
	req := amqpwire.Properties{Flags: amqpwire.FlagCorrelationID | amqpwire.FlagReplyTo, ReplyTo: replyTo}
	return func(ctx context.Context, id string) error {
		req.CorrelationID = id
		if err := c.publish(queue, &req, body); err != nil {
			return fmt.Errorf("publish request: %w", err)
		}
		rep, err := c.next()
		if err != nil {
			return fmt.Errorf("wait for the reply: %w", err)
		}
		if rep.CorrelationID != id {
			return fmt.Errorf("reply for %q, want %q", rep.CorrelationID, id)
		}
		return nil
	}
}
