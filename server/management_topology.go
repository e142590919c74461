package server

import (
	"strings"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/binding"
	"github.com/warrenmq/warren/exchange"
	"github.com/warrenmq/warren/server/vhost"
)

// Declaring and deleting topology for the management API. Each call acts as a user, with the
// same permission checks and the same model calls as the AMQP method it stands for
// (exchange.declare, queue.delete, queue.bind...), so what the API makes persists, routes and
// is refused exactly as what a client makes. The model's errors are returned as they are
// (amqpwire errors with RabbitMQ's reply codes); the API maps them to HTTP.

// apiVhost returns the named vhost or ErrVhostNotFound.
func (s *Server) apiVhost(name string) (*vhost.Vhost, error) {
	v := s.vhost(name)
	if v == nil {
		return nil, ErrVhostNotFound
	}
	return v, nil
}

// DeclareExchangeAs declares d in vhost vh as user, as exchange.declare does, and reports
// whether it created the exchange (false: an equivalent one existed).
func (s *Server) DeclareExchangeAs(user, vh string, d exchange.Definition) (bool, error) {
	v, err := s.apiVhost(vh)
	if err != nil {
		return false, err
	}
	if err := s.checkUserAccess(user, vh, permConfigure, resExchange, d.Name); err != nil {
		return false, err
	}
	if ae, ok := vhost.StringArg(d.Args, "alternate-exchange"); ok {
		if err := s.checkUserAccess(user, vh, permWrite, resExchange, ae); err != nil {
			return false, err
		}
		if err := s.checkUserAccess(user, vh, permRead, resExchange, d.Name); err != nil {
			return false, err
		}
	}
	existed := d.Name != "" && v.HasExchange(d.Name)
	if err := s.declareExchange(v, d); err != nil {
		return false, err
	}
	return !existed, nil
}

// DeleteExchangeAs deletes exchange name in vh as user, as exchange.delete does; a missing
// exchange is ErrNotFound.
func (s *Server) DeleteExchangeAs(user, vh, name string, ifUnused bool) error {
	v, err := s.apiVhost(vh)
	if err != nil {
		return err
	}
	if name != "" && !v.HasExchange(name) {
		return ErrNotFound
	}
	if err := s.checkUserAccess(user, vh, permConfigure, resExchange, name); err != nil {
		return err
	}
	return s.deleteExchange(v, name, ifUnused)
}

// DeclareQueueAs declares a queue in vh as user, as queue.declare does (never exclusive: the
// API has no connection to own it), and reports whether it created the queue.
func (s *Server) DeclareQueueAs(user, vh string, d vhost.QueueDecl) (bool, error) {
	v, err := s.apiVhost(vh)
	if err != nil {
		return false, err
	}
	if strings.HasPrefix(d.Name, "amq.") {
		return false, amqpwire.NewChannelError(amqpwire.CodeAccessRefused, 0, 0,
			"queue name '%s' contains reserved prefix 'amq.*'", d.Name)
	}
	if err := s.checkUserAccess(user, vh, permConfigure, resQueue, d.Name); err != nil {
		return false, err
	}
	if dlx, ok := vhost.StringArg(d.Args, "x-dead-letter-exchange"); ok {
		if err := s.checkUserAccess(user, vh, permWrite, resExchange, dlx); err != nil {
			return false, err
		}
		if err := s.checkUserAccess(user, vh, permRead, resQueue, d.Name); err != nil {
			return false, err
		}
	}
	if err := s.checkQueueLimit(v, d.Name); err != nil {
		return false, err
	}
	d.Passive, d.Exclusive = false, false
	existed := v.HasQueue(d.Name)
	if _, err := s.declareQueue(nil, v, d); err != nil {
		return false, err
	}
	s.counters.queuesDeclared.Add(1)
	return !existed, nil
}

// DeleteQueueAs deletes queue name in vh as user, as queue.delete does; a missing queue is
// ErrNotFound.
func (s *Server) DeleteQueueAs(user, vh, name string, ifUnused, ifEmpty bool) error {
	v, err := s.apiVhost(vh)
	if err != nil {
		return err
	}
	if !v.HasQueue(name) {
		return ErrNotFound
	}
	if err := s.checkUserAccess(user, vh, permConfigure, resQueue, name); err != nil {
		return err
	}
	_, err = s.deleteQueue(nil, v, name, ifUnused, ifEmpty)
	return err
}

// BindAs adds b in vh as user, as queue.bind or exchange.bind does.
func (s *Server) BindAs(user, vh string, b binding.Binding) error {
	v, err := s.apiVhost(vh)
	if err != nil {
		return err
	}
	if err := s.checkUserBind(user, vh, b); err != nil {
		return err
	}
	return s.bind(nil, v, b)
}

// UnbindAs removes b in vh as user, as queue.unbind or exchange.unbind does.
func (s *Server) UnbindAs(user, vh string, b binding.Binding) error {
	v, err := s.apiVhost(vh)
	if err != nil {
		return err
	}
	if err := s.checkUserBind(user, vh, b); err != nil {
		return err
	}
	return s.unbind(nil, v, b)
}

// checkUserBind is channel.checkBind for user: write on the destination, read on the source,
// and the topic permission on the binding key.
func (s *Server) checkUserBind(user, vh string, b binding.Binding) error {
	kind := resQueue
	if b.Dest.Kind == binding.DestExchange {
		kind = resExchange
	}
	if err := s.checkUserAccess(user, vh, permWrite, kind, b.Dest.Name); err != nil {
		return err
	}
	if err := s.checkUserAccess(user, vh, permRead, resExchange, b.Source); err != nil {
		return err
	}
	if v := s.vhost(vh); v != nil && s.access.p.Load().topics[user] != nil {
		if x, err := v.Exchange(b.Source); err == nil {
			return s.checkUserTopic(user, vh, permRead, x.Kind(), b.Source, b.RoutingKey)
		}
	}
	return nil
}
