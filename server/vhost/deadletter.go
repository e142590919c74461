package vhost

import (
	"time"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/server/queue"
)

// deadLetterer republishes a queue's dead messages to its dead-letter exchange, with the
// x-death headers RabbitMQ writes (COMPATIBILITY.md §4). Dead-lettering is at most once: the
// new copies are published without confirms, as in RabbitMQ.
type deadLetterer struct {
	v     *Vhost
	queue string
	rec   *Queue
}

// hook is the queue's DeadLetter option. Without a dead-letter exchange (from the arguments
// or a policy, looked up at each death) dead messages are dropped.
func (d *deadLetterer) hook() func(*queue.Queue, []queue.Dead) {
	return func(_ *queue.Queue, dead []queue.Dead) {
		args := d.rec.cur()
		if !args.dlxSet {
			return
		}
		for _, x := range dead {
			d.publish(args, x)
		}
	}
}

func (d *deadLetterer) publish(args *queueArgs, dead queue.Dead) {
	x, err := d.v.Exchange(args.dlx)
	if err != nil {
		// RabbitMQ drops messages whose dead-letter exchange does not exist.
		d.v.log.Debug().Str("queue", d.queue).Str("dlx", args.dlx).Msg("dead-letter exchange missing; message dropped")
		return
	}
	old := dead.Entry.Msg
	keys := d.routingKeys(args, old)
	props, err := deathProperties(old, d.queue, dead.Reason, args.dlrkSet)
	if err != nil {
		d.v.log.Error().Err(err).Str("queue", d.queue).Msg("cannot build x-death headers; message dropped")
		return
	}
	msg := &queue.Message{
		Exchange:      args.dlx,
		RoutingKey:    keys[0],
		Properties:    props,
		RawProperties: props.Append(nil),
		Body:          old.Body,
		Persistent:    old.Persistent,
	}
	if !args.dlrkSet {
		msg.BCC = old.BCC
	}
	if args.dlrkSet {
		msg.RoutingKey = args.dlrk
	}
	var s Scratch
	qs := d.v.route(x, keys, &props, &s)
	if !byClient(string(dead.Reason)) {
		qs = dropCycles(qs, props.Headers)
	}
	qs, _ = dedupQueues(msg, qs)
	d.v.enqueue(msg, qs, d.v.writers(msg, qs), nil, nil)
}

// routingKeys: the queue's dead-letter routing key, or else the message's routing key and CC.
func (d *deadLetterer) routingKeys(args *queueArgs, m *queue.Message) []string {
	if args.dlrkSet {
		return []string{args.dlrk}
	}
	keys := []string{m.RoutingKey}
	if v, ok, _ := m.Properties.Headers.Get("CC"); ok {
		if arr, isArray := v.([]any); isArray {
			for _, k := range arr {
				if s, isString := k.(string); isString {
					keys = append(keys, s)
				}
			}
		}
	}
	return append(keys, m.BCC...)
}

// deathProperties returns the dead copy's properties: x-death updated for this event (the
// {queue, reason} entry counted up and moved first, or a new one), x-first-death-* set once,
// x-last-death-* set each time, the expiration moved into original-expiration, and CC dropped
// when the routing key is replaced. BCC never reaches a queue, so it is never here.
func deathProperties(m *queue.Message, qname string, reason queue.Reason, replacedKey bool) (amqpwire.Properties, error) {
	p := m.Properties
	headers, err := p.Headers.Map()
	if err != nil {
		return p, err
	}
	if headers == nil {
		headers = map[string]any{}
	}
	routingKeys := []any{m.RoutingKey}
	if cc, ok := headers["CC"].([]any); ok {
		routingKeys = append(routingKeys, cc...)
	}
	event := map[string]any{
		"queue":        qname,
		"reason":       string(reason),
		"time":         time.Now().UTC().Truncate(time.Second),
		"exchange":     m.Exchange,
		"routing-keys": routingKeys,
		"count":        int64(1),
	}
	if p.Flags&amqpwire.FlagExpiration != 0 {
		event["original-expiration"] = p.Expiration
		p.Flags &^= amqpwire.FlagExpiration
		p.Expiration = ""
	}
	deaths := []any{}
	if old, ok := headers["x-death"].([]any); ok {
		for _, o := range old {
			t, isTable := o.(amqpwire.Table)
			if !isTable {
				continue
			}
			om, err := t.Map()
			if err != nil {
				return p, err
			}
			if om["queue"] == qname && om["reason"] == string(reason) {
				// Same {queue, reason}: keep its first time, exchange and keys, count it up.
				n, _ := asInt(om["count"])
				om["count"] = n + 1
				event = om
				continue
			}
			deaths = append(deaths, om)
		}
	}
	headers["x-death"] = append([]any{event}, deaths...)
	if _, ok := headers["x-first-death-reason"]; !ok {
		headers["x-first-death-reason"] = string(reason)
		headers["x-first-death-queue"] = qname
		headers["x-first-death-exchange"] = m.Exchange
	}
	headers["x-last-death-reason"] = string(reason)
	headers["x-last-death-queue"] = qname
	headers["x-last-death-exchange"] = m.Exchange
	if replacedKey {
		delete(headers, "CC")
	}
	t, err := amqpwire.NewTable(headers)
	if err != nil {
		return p, err
	}
	p.Headers = t
	p.Flags |= amqpwire.FlagHeaders
	return p, nil
}

// dropCycles removes the queues a message has already died in without any rejection on the
// way since (rabbit_dead_letter:is_cycle): an automatic loop such as expiry back into the same
// queue would otherwise never end.
func dropCycles(qs []*Queue, headers amqpwire.Table) []*Queue {
	v, ok, _ := headers.Get("x-death")
	deaths, isArray := v.([]any)
	if !ok || !isArray {
		return qs
	}
	kept := qs[:0:0]
	for _, q := range qs {
		if !isCycle(q.name, deaths) {
			kept = append(kept, q)
		}
	}
	return kept
}

func isCycle(qname string, deaths []any) bool {
	for _, d := range deaths {
		t, isTable := d.(amqpwire.Table)
		if !isTable {
			return false
		}
		if reason, _, _ := t.Get("reason"); byClient(reason) {
			return false
		}
		if q, _, _ := t.Get("queue"); q == qname {
			return true
		}
	}
	return false
}

// byClient reports whether a dead-letter reason involved a client: a rejection, or a delivery
// its consumer did not acknowledge in time. As in RabbitMQ, a cycle with such a death in it is
// allowed (a retry loop), one of automatic deaths only (expiry, length limit) is broken.
func byClient(reason any) bool {
	return reason == string(queue.Rejected) || reason == string(queue.DeliveryTimeout)
}
