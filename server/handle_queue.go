package server

import (
	"crypto/rand"
	"encoding/base64"
	"strings"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
	"github.com/warrenmq/warren/server/vhost"
)

// uniqueName returns prefix followed by 22 random URL-safe characters, the shape of RabbitMQ's
// server-generated names (amq.gen-…, amq.ctag-…).
func uniqueName(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

func (ch *channel) queueDeclare(m *amqpwire.QueueDeclare) error {
	name := m.Queue
	if strings.HasPrefix(name, replyToQueue) {
		return ch.declareReplyTo(m)
	}
	if !m.Passive && strings.HasPrefix(name, "amq.") {
		return amqpwire.NewChannelError(amqpwire.CodeAccessRefused, 0, 0,
			"queue name '%s' contains reserved prefix 'amq.*'", name)
	}
	if name == "" {
		if m.Passive {
			var err error
			if name, err = ch.expandQueueName(name); err != nil {
				return err
			}
		} else {
			name = uniqueName("amq.gen-")
		}
	}
	if !m.Passive {
		if err := ch.checkDeclareQueue(name, m.Arguments); err != nil {
			return err
		}
		if err := ch.conn.srv.checkQueueLimit(ch.vh, name); err != nil {
			return err
		}
	}
	q, err := ch.conn.srv.declareQueue(ch.conn, ch.vh, vhost.QueueDecl{
		Name:        name,
		Passive:     m.Passive,
		Durable:     m.Durable,
		Exclusive:   m.Exclusive,
		AutoDelete:  m.AutoDelete,
		Args:        m.Arguments,
		ServerNamed: m.Queue == "" && !m.Passive,
	})
	if err != nil {
		return err
	}
	if !m.Passive {
		ch.conn.srv.counters.queuesDeclared.Add(1)
	}
	if q.OwnedBy(ch.conn) {
		ch.conn.exclusive = append(ch.conn.exclusive, q.Name())
	}
	ch.lastQueue = name
	if !m.NoWait && q.Remote() != "" && ch.conn.srv.fwd != nil {
		// Held by another node (forward_get.go), a quorum queue's leader included: its counts
		// are exact there (consumers too), as RabbitMQ answers from the leader. A member that
		// cannot reach a leader answers with the messages its group committed.
		if err := ch.declareOkRemote(q); err == nil || !q.Replicated() {
			return err
		}
	}
	if !m.NoWait {
		st := q.Stats()
		ch.send(&amqpwire.QueueDeclareOk{Queue: name, MessageCount: uint32(st.Ready), ConsumerCount: uint32(st.Consumers)})
	}
	return nil
}

// queueBinding is the binding a queue.bind or queue.unbind names.
func (ch *channel) queueBinding(exchange, queue, key string, args amqpwire.Table) (binding.Binding, error) {
	name, err := ch.expandQueueName(queue)
	if err != nil {
		return binding.Binding{}, err
	}
	return binding.Binding{
		Source:     exchange,
		Dest:       binding.Destination{Kind: binding.DestQueue, Name: name},
		RoutingKey: key,
		Args:       args,
	}, nil
}

// queueNamed returns the queue an operation names, after the empty-name shortcut.
func (ch *channel) queueNamed(queue string) (*vhost.Queue, error) {
	name, err := ch.expandQueueName(queue)
	if err != nil {
		return nil, err
	}
	return ch.vh.QueueFor(ch.conn, name)
}

func (ch *channel) queueBind(m *amqpwire.QueueBind) error {
	b, err := ch.queueBinding(m.Exchange, m.Queue, m.RoutingKey, m.Arguments)
	if err != nil {
		return err
	}
	if err := ch.checkBind(b); err != nil {
		return err
	}
	if err := ch.conn.srv.bind(ch.conn, ch.vh, b); err != nil {
		return err
	}
	if !m.NoWait {
		ch.send(&amqpwire.QueueBindOk{})
	}
	return nil
}

func (ch *channel) queueUnbind(m *amqpwire.QueueUnbind) error {
	b, err := ch.queueBinding(m.Exchange, m.Queue, m.RoutingKey, m.Arguments)
	if err != nil {
		return err
	}
	if err := ch.checkBind(b); err != nil {
		return err
	}
	if err := ch.conn.srv.unbind(ch.conn, ch.vh, b); err != nil {
		return err
	}
	ch.send(&amqpwire.QueueUnbindOk{})
	return nil
}

func (ch *channel) queuePurge(m *amqpwire.QueuePurge) error {
	q, err := ch.queueNamed(m.Queue)
	if err != nil {
		return err
	}
	if err := ch.conn.checkAccess(permRead, resQueue, q.Name()); err != nil {
		return err
	}
	var n uint32
	if q.Remote() != "" && ch.conn.srv.fwd != nil {
		if n, err = ch.purgeRemote(q); err != nil { // held by another node (forward_get.go)
			return err
		}
	} else {
		n = uint32(q.Core().Purge())
	}
	if !m.NoWait {
		ch.send(&amqpwire.QueuePurgeOk{MessageCount: n})
	}
	return nil
}

func (ch *channel) queueDelete(m *amqpwire.QueueDelete) error {
	name, err := ch.expandQueueName(m.Queue)
	if err != nil {
		return err
	}
	if err := ch.conn.checkAccess(permConfigure, resQueue, name); err != nil {
		return err
	}
	n, err := ch.conn.srv.deleteQueue(ch.conn, ch.vh, name, m.IfUnused, m.IfEmpty)
	if err != nil {
		return err
	}
	if !m.NoWait {
		ch.send(&amqpwire.QueueDeleteOk{MessageCount: uint32(n)})
	}
	return nil
}

// checkDeclareQueue is RabbitMQ's access check for queue.declare: configure on the queue and,
// with a dead-letter exchange, write on that and read on the queue.
func (ch *channel) checkDeclareQueue(name string, args amqpwire.Table) error {
	c := ch.conn
	if err := c.checkAccess(permConfigure, resQueue, name); err != nil {
		return err
	}
	if dlx, ok := vhost.StringArg(args, "x-dead-letter-exchange"); ok {
		if err := c.checkAccess(permWrite, resExchange, dlx); err != nil {
			return err
		}
		return c.checkAccess(permRead, resQueue, name)
	}
	return nil
}
