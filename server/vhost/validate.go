package vhost

import (
	"strings"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/exchange"
)

// Checks of a new exchange or queue without declaring it: in a cluster the node a client is
// connected to refuses bad input before proposing it, with the same replies DeclareExchange
// and DeclareQueue give.

// ValidateExchange checks d as DeclareExchange checks a new exchange.
func (v *Vhost) ValidateExchange(d exchange.Definition) error {
	if d.Name == "" {
		return errDefaultExchange()
	}
	if strings.HasPrefix(d.Name, "amq.") {
		return amqpwire.NewChannelError(amqpwire.CodeAccessRefused, 0, 0,
			"exchange name '%s' contains reserved prefix 'amq.*'", d.Name)
	}
	if d.Kind != exchange.KindDelayed && !exchange.KnownKind(d.Kind) {
		return amqpwire.NewConnectionError(amqpwire.CodeCommandInvalid, 0, 0, "unknown exchange type '%s'", d.Kind)
	}
	if _, err := newRouter(d); err != nil {
		return err
	}
	_, err := exchangeDedupArgs(d, v.name)
	return err
}

// ValidateQueue checks d as DeclareQueue checks a new queue.
func (v *Vhost) ValidateQueue(d QueueDecl) error {
	if t, _ := StringArg(d.Args, "x-queue-type"); t == typeQuorum && d.ServerNamed {
		return amqpwire.NewChannelError(amqpwire.CodePreconditionFailed, 0, 0,
			"Cannot declare a server-named queue for type rabbit_quorum_queue")
	}
	qa, err := parseQueueArgs(d.Name, v.name, d.Args)
	if err != nil {
		return err
	}
	if qa.quorum {
		return checkQuorumDeclare(d, v.name)
	}
	return nil
}
