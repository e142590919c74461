package server

import (
	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
	"github.com/warrenmq/warren/exchange"
	"github.com/warrenmq/warren/server/vhost"
)

func (ch *channel) exchangeDeclare(m *amqpwire.ExchangeDeclare) error {
	d := exchange.Definition{
		Name:       m.Exchange,
		Kind:       m.Type,
		Durable:    m.Durable,
		AutoDelete: m.AutoDelete,
		Internal:   m.Internal,
		Args:       m.Arguments,
	}
	if !m.Passive {
		if err := ch.checkDeclareExchange(d); err != nil {
			return err
		}
	}
	var err error
	if m.Passive {
		err = ch.vh.DeclareExchange(d, true)
	} else {
		err = ch.conn.srv.declareExchange(ch.vh, d)
	}
	if err != nil {
		return err
	}
	if !m.NoWait {
		ch.send(&amqpwire.ExchangeDeclareOk{})
	}
	return nil
}

func (ch *channel) exchangeDelete(m *amqpwire.ExchangeDelete) error {
	if err := ch.conn.checkAccess(permConfigure, resExchange, m.Exchange); err != nil {
		return err
	}
	if err := ch.conn.srv.deleteExchange(ch.vh, m.Exchange, m.IfUnused); err != nil {
		return err
	}
	if !m.NoWait {
		ch.send(&amqpwire.ExchangeDeleteOk{})
	}
	return nil
}

func (ch *channel) exchangeBind(m *amqpwire.ExchangeBind) error {
	b := binding.Binding{
		Source:     m.Source,
		Dest:       binding.Destination{Kind: binding.DestExchange, Name: m.Destination},
		RoutingKey: m.RoutingKey,
		Args:       m.Arguments,
	}
	if err := ch.checkBind(b); err != nil {
		return err
	}
	if err := ch.conn.srv.bind(ch.conn, ch.vh, b); err != nil {
		return err
	}
	if !m.NoWait {
		ch.send(&amqpwire.ExchangeBindOk{})
	}
	return nil
}

func (ch *channel) exchangeUnbind(m *amqpwire.ExchangeUnbind) error {
	b := binding.Binding{
		Source:     m.Source,
		Dest:       binding.Destination{Kind: binding.DestExchange, Name: m.Destination},
		RoutingKey: m.RoutingKey,
		Args:       m.Arguments,
	}
	if err := ch.checkBind(b); err != nil {
		return err
	}
	if err := ch.conn.srv.unbind(ch.conn, ch.vh, b); err != nil {
		return err
	}
	if !m.NoWait {
		ch.send(&amqpwire.ExchangeUnbindOk{})
	}
	return nil
}

// checkDeclareExchange is RabbitMQ's access check for exchange.declare: configure on the
// exchange and, with an alternate exchange, write on that and read on this one.
func (ch *channel) checkDeclareExchange(d exchange.Definition) error {
	c := ch.conn
	if err := c.checkAccess(permConfigure, resExchange, d.Name); err != nil {
		return err
	}
	if ae, ok := vhost.StringArg(d.Args, "alternate-exchange"); ok {
		if err := c.checkAccess(permWrite, resExchange, ae); err != nil {
			return err
		}
		return c.checkAccess(permRead, resExchange, d.Name)
	}
	return nil
}

// checkBind is the access check for a binding: write on the destination, read on the source,
// and, when the source is a topic exchange, the user's topic permission on the binding key.
func (ch *channel) checkBind(b binding.Binding) error {
	kind := resQueue
	if b.Dest.Kind == binding.DestExchange {
		kind = resExchange
	}
	if err := ch.conn.checkAccess(permWrite, kind, b.Dest.Name); err != nil {
		return err
	}
	if err := ch.conn.checkAccess(permRead, resExchange, b.Source); err != nil {
		return err
	}
	if !ch.conn.hasTopicPermissions() {
		return nil
	}
	x, err := ch.vh.Exchange(b.Source)
	if err != nil {
		return nil // the bind itself answers 404
	}
	return ch.conn.checkTopic(permRead, x.Kind(), b.Source, b.RoutingKey)
}
