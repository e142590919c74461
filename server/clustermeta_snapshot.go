package server

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/warrenmq/warren/exchange"
	"github.com/warrenmq/warren/server/cluster"
	"github.com/warrenmq/warren/server/vhost"
)

// Snapshots of the replicated model: the commands that rebuild it, in an order that applies
// (vhosts and users before what refers to them, exchanges and queues before bindings). The
// definitions files' objects are not in it (each node has its files); neither are exclusive
// or non-durable queues.

// ExportMeta implements cluster.Applier.
func (s *Server) ExportMeta() ([]cluster.Command, error) {
	var out []cluster.Command
	var err error
	add := func(op, vh, name string, body any, rec *cluster.QueueRecord) {
		c := cluster.Command{V: cluster.CommandVersion, Op: op, Vhost: vh, Name: name, Queue: rec}
		if body != nil {
			b, merr := json.Marshal(body)
			if merr != nil && err == nil {
				err = fmt.Errorf("encoding %s %s: %w", op, name, merr)
			}
			c.Body = b
		}
		out = append(out, c)
	}
	s.applyMu.Lock()
	l := s.api
	for _, name := range slices.Sorted(maps.Keys(l.vhosts)) {
		v := l.vhosts[name]
		add(cluster.OpVhostPut, "", name, vhostPutArgs{Description: v.Description, Tags: v.Tags}, nil)
	}
	for _, name := range slices.Sorted(maps.Keys(l.users)) {
		u := l.users[name]
		h := u.PasswordHash
		add(cluster.OpUserPut, "", name, userPutArgs{Change: UserChange{PasswordHash: &h, HashingAlgorithm: u.HashingAlgorithm, Tags: u.Tags}}, nil)
	}
	for _, lim := range []struct {
		op    string
		layer map[string]map[string]int64
	}{{cluster.OpVhostLimit, l.vhostLimits}, {cluster.OpUserLimit, l.userLimits}} {
		for _, owner := range slices.Sorted(maps.Keys(lim.layer)) {
			for _, name := range slices.Sorted(maps.Keys(lim.layer[owner])) {
				val := lim.layer[owner][name]
				add(lim.op, "", owner, limitArgs{Limit: name, Value: &val}, nil)
			}
		}
	}
	for _, k := range slices.SortedFunc(maps.Keys(l.perms), func(a, b vhostUser) int {
		return cmp.Or(strings.Compare(a.vhost, b.vhost), strings.Compare(a.user, b.user))
	}) {
		p := l.perms[k]
		add(cluster.OpPermissionPut, k.vhost, k.user, permissionArgs{Configure: p.Configure, Write: p.Write, Read: p.Read}, nil)
	}
	for _, k := range slices.SortedFunc(maps.Keys(l.topics), func(a, b topicKey) int {
		return cmp.Or(strings.Compare(a.vhost, b.vhost), strings.Compare(a.user, b.user), strings.Compare(a.exchange, b.exchange))
	}) {
		t := l.topics[k]
		add(cluster.OpTopicPut, k.vhost, k.user, permissionArgs{Exchange: k.exchange, Write: t.Write, Read: t.Read}, nil)
	}
	for _, k := range slices.SortedFunc(maps.Keys(l.policies), func(a, b policyKey) int {
		return cmp.Or(strings.Compare(a.vhost, b.vhost), strings.Compare(a.name, b.name))
	}) {
		p := l.policies[k]
		add(cluster.OpPolicyPut, k.vhost, k.name, PolicyChange{Pattern: p.Pattern, ApplyTo: p.ApplyTo, Priority: p.Priority, Definition: p.Definition}, nil)
	}
	s.applyMu.Unlock()

	vhosts := s.vhostList()
	slices.SortFunc(vhosts, func(a, b *vhost.Vhost) int { return strings.Compare(a.Name(), b.Name()) })
	for _, v := range vhosts {
		for _, x := range v.Exchanges() {
			if x.Name == "" || strings.HasPrefix(x.Name, "amq.") {
				continue
			}
			add(cluster.OpExchangeDeclare, v.Name(), x.Name, exchange.Definition{Name: x.Name, Kind: x.Kind, Durable: x.Durable,
				AutoDelete: x.AutoDelete, Internal: x.Internal, Args: x.Arguments}, nil)
		}
		for _, q := range v.Queues() {
			if rec, ok := s.meta.QueueRecord(v.Name(), q.Name); ok {
				add(cluster.OpQueueDeclare, v.Name(), q.Name, vhost.QueueDecl{Name: q.Name, Durable: q.Durable, AutoDelete: q.AutoDelete,
					Args: q.Arguments}, &rec)
			}
		}
		for _, b := range v.Bindings() {
			if b.Source != "" && s.replicatedBinding(v, b) {
				add(cluster.OpBind, v.Name(), b.Dest.Name, b, nil)
			}
		}
	}
	return out, err
}

// RestoreMeta implements cluster.Applier: the model becomes the snapshot's. What this node
// has and the snapshot does not is deleted (bindings first, vhosts last); an exchange or
// queue whose definition differs is deleted and declared again; then every command of the
// snapshot is applied (a put overwrites, a declare of what exists is a no-op).
func (s *Server) RestoreMeta(cmds []cluster.Command) error {
	cur, err := s.ExportMeta()
	if err != nil {
		return err
	}
	want := make(map[string]cluster.Command, len(cmds))
	for _, c := range cmds {
		want[commandKey(c)] = c
	}
	apply := func(c cluster.Command) {
		if err := s.ApplyMeta(c); err != nil {
			s.log.Warn().Err(err).Str("op", c.Op).Str("vhost", c.Vhost).Str("name", c.Name).Msg("cluster: restoring the metadata snapshot")
		}
	}
	for i := len(cur) - 1; i >= 0; i-- {
		c := cur[i]
		w, ok := want[commandKey(c)]
		topology := c.Op == cluster.OpExchangeDeclare || c.Op == cluster.OpQueueDeclare
		if !ok || topology && !sameCommand(c, w) {
			apply(undo(c))
		}
	}
	for _, c := range cmds {
		apply(c)
	}
	return nil
}

// commandKey names the object a put or declare command makes.
func commandKey(c cluster.Command) string {
	extra := ""
	switch c.Op {
	case cluster.OpBind:
		extra = string(c.Body)
	case cluster.OpTopicPut:
		var a permissionArgs
		_ = json.Unmarshal(c.Body, &a)
		extra = a.Exchange
	case cluster.OpVhostLimit, cluster.OpUserLimit:
		var a limitArgs
		_ = json.Unmarshal(c.Body, &a)
		extra = a.Limit
	}
	return c.Op + "\x00" + c.Vhost + "\x00" + c.Name + "\x00" + extra
}

func sameCommand(a, b cluster.Command) bool {
	ra, _ := json.Marshal(a.Queue)
	rb, _ := json.Marshal(b.Queue)
	return bytes.Equal(a.Body, b.Body) && bytes.Equal(ra, rb)
}

// undo is the command that removes what c made.
func undo(c cluster.Command) cluster.Command {
	u := cluster.Command{V: cluster.CommandVersion, Vhost: c.Vhost, Name: c.Name}
	switch c.Op {
	case cluster.OpVhostPut:
		u.Op = cluster.OpVhostDelete
	case cluster.OpUserPut:
		u.Op = cluster.OpUserDelete
	case cluster.OpVhostLimit, cluster.OpUserLimit:
		var a limitArgs
		_ = json.Unmarshal(c.Body, &a)
		u.Op, u.Body = c.Op, mustJSON(limitArgs{Limit: a.Limit})
	case cluster.OpPermissionPut:
		u.Op = cluster.OpPermissionDel
	case cluster.OpTopicPut:
		var a permissionArgs
		_ = json.Unmarshal(c.Body, &a)
		u.Op, u.Body = cluster.OpTopicDelete, mustJSON(permissionArgs{Exchange: a.Exchange})
	case cluster.OpPolicyPut:
		u.Op = cluster.OpPolicyDelete
	case cluster.OpExchangeDeclare:
		u.Op, u.Body = cluster.OpExchangeDelete, mustJSON(deleteArgs{})
	case cluster.OpQueueDeclare:
		u.Op, u.Body, u.Queue = cluster.OpQueueDelete, mustJSON(deleteArgs{}), c.Queue
	case cluster.OpBind:
		u.Op, u.Body = cluster.OpUnbind, c.Body
	}
	return u
}
