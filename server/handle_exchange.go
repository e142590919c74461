package server

import (
	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
	"github.com/warrenmq/warren/exchange"
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
	if err := ch.vh.declareExchange(d, m.Passive); err != nil {
		return err
	}
	if !m.NoWait {
		ch.send(&amqpwire.ExchangeDeclareOk{})
	}
	return nil
}

func (ch *channel) exchangeDelete(m *amqpwire.ExchangeDelete) error {
	if err := ch.vh.deleteExchange(m.Exchange, m.IfUnused); err != nil {
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
	if err := ch.vh.bind(ch.conn, b); err != nil {
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
	if err := ch.vh.unbind(ch.conn, b); err != nil {
		return err
	}
	if !m.NoWait {
		ch.send(&amqpwire.ExchangeUnbindOk{})
	}
	return nil
}
