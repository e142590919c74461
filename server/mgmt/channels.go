package mgmt

import (
	"net/http"

	"github.com/warrenmq/warren/server"
)

// Channels and consumers (rabbit_mgmt_wm_channels, _channel, _consumers). A monitor sees all;
// other users see those of their own connections.

func channelKey(name string) string { return "channel\x00" + name }

// visibleChannels are the channels u may see.
func (a *api) visibleChannels(u user) []server.ChannelInfo {
	all := a.src.Channels()
	if u.isMonitor() {
		return all
	}
	out := all[:0:0]
	for _, ch := range all {
		if ch.Connection.User == u.name {
			out = append(out, ch)
		}
	}
	return out
}

// replyChannels answers a list of channels; only /api/channels is paginated, as in RabbitMQ.
func (a *api) replyChannels(w http.ResponseWriter, r *http.Request, chs []server.ChannelInfo, paginate bool) {
	out := make([]map[string]any, 0, len(chs))
	for _, ch := range chs {
		m := a.channelJSON(ch)
		a.rates.fill(channelKey(ch.Name()), m)
		out = append(out, m)
	}
	a.replyList(w, r, out, paginate, "vhost", "name")
}

func (a *api) channels(w http.ResponseWriter, r *http.Request, u user, _ []string) {
	a.replyChannels(w, r, a.visibleChannels(u), true)
}

// vhostChannels serves /api/vhosts/{vhost}/channels.
func (a *api) vhostChannels(w http.ResponseWriter, r *http.Request, u user, args []string) {
	v, ok := a.vhostArg(w, u, args[0])
	if !ok {
		return
	}
	var out []server.ChannelInfo
	for _, ch := range a.visibleChannels(u) {
		if ch.Connection.Vhost == v.Name() {
			out = append(out, ch)
		}
	}
	a.replyChannels(w, r, out, false)
}

// connectionChannels serves /api/connections/{name}/channels: 404 for no such connection, 401
// for another user's unless u is a monitor.
func (a *api) connectionChannels(w http.ResponseWriter, r *http.Request, u user, args []string) {
	conn := a.findConnection(args[0])
	if conn == nil {
		notFound(w)
		return
	}
	if conn.User != u.name && !u.isMonitor() {
		writeError(w, http.StatusUnauthorized, "not_authorised", "User not authorised to access object")
		return
	}
	var out []server.ChannelInfo
	for _, ch := range a.src.Channels() {
		if ch.Connection.Name == conn.Name {
			out = append(out, ch)
		}
	}
	a.replyChannels(w, r, out, false)
}

// channel serves /api/channels/{name}; the object adds consumer_details.
func (a *api) channel(w http.ResponseWriter, r *http.Request, u user, args []string) {
	for _, ch := range a.src.Channels() {
		if ch.Name() != args[0] {
			continue
		}
		if ch.Connection.User != u.name && !u.isMonitor() {
			writeError(w, http.StatusUnauthorized, "not_authorised", "User not authorised to access object")
			return
		}
		m := a.channelJSON(ch)
		a.rates.fill(channelKey(ch.Name()), m)
		details := make([]map[string]any, 0, len(ch.Consumers))
		for _, cs := range ch.Consumers {
			cj := a.consumerJSON(ch, cs)
			delete(cj, "channel_details")
			details = append(details, cj)
		}
		m["consumer_details"] = details
		m["publishes"], m["deliveries"] = []any{}, []any{}
		replyObject(w, r, m)
		return
	}
	notFound(w)
}

func (a *api) channelJSON(ch server.ChannelInfo) map[string]any {
	c := ch.Connection
	m := map[string]any{
		"name": ch.Name(), "node": a.id.Node, "number": ch.Number, "user": c.User, "vhost": c.Vhost,
		"user_who_performed_action": c.User,
		"connection_details":        map[string]any{"name": c.Name, "peer_host": c.PeerHost, "peer_port": c.PeerPort},
		"consumer_count":            len(ch.Consumers), "messages_unacknowledged": ch.Unacked,
		"messages_unconfirmed": ch.Unconfirmed, "messages_uncommitted": ch.Uncommitted,
		"acks_uncommitted": ch.AcksUncommitted, "pending_raft_commands": 0,
		"prefetch_count": ch.PrefetchCount, "global_prefetch_count": ch.GlobalPrefetchCount,
		"confirm": ch.Confirm, "transactional": ch.Transactional, "state": "running",
	}
	s := ch.Stats
	if s != (server.MessageCounters{}) {
		m["message_stats"] = messageStats(
			"ack", s.Ack, "confirm", s.Confirm, "deliver", s.Deliver,
			"deliver_get", s.Deliver+s.DeliverNoAck+s.Get+s.GetNoAck, "deliver_no_ack", s.DeliverNoAck,
			"drop_unroutable", s.DropUnroutable, "get", s.Get, "get_empty", s.GetEmpty, "get_no_ack", s.GetNoAck,
			"publish", s.Publish, "redeliver", s.Redeliver, "return_unroutable", s.ReturnUnroutable)
	}
	return m
}

// consumers serves /api/consumers and /api/consumers/{vhost}: not paginated, sorted by queue
// and tag.
func (a *api) consumers(w http.ResponseWriter, r *http.Request, u user, args []string) {
	vhostName := ""
	if len(args) == 1 {
		v, ok := a.vhostArg(w, u, args[0])
		if !ok {
			return
		}
		vhostName = v.Name()
	}
	out := []map[string]any{}
	for _, ch := range a.visibleChannels(u) {
		if vhostName != "" && ch.Connection.Vhost != vhostName {
			continue
		}
		for _, cs := range ch.Consumers {
			out = append(out, a.consumerJSON(ch, cs))
		}
	}
	a.replyList(w, r, out, false, "queue.vhost", "queue.name", "consumer_tag")
}

func (a *api) consumerJSON(ch server.ChannelInfo, cs server.ConsumerInfo) map[string]any {
	c := ch.Connection
	return map[string]any{
		"consumer_tag": cs.Tag, "exclusive": cs.Exclusive, "ack_required": !cs.NoAck,
		"prefetch_count": cs.Prefetch, "arguments": tableJSON(cs.Arguments),
		"active": true, "activity_status": "up",
		"queue": map[string]any{"name": cs.Queue, "vhost": cs.Vhost},
		"channel_details": map[string]any{"name": ch.Name(), "number": ch.Number, "user": c.User,
			"connection_name": c.Name, "peer_host": c.PeerHost, "peer_port": c.PeerPort, "node": a.id.Node},
	}
}
