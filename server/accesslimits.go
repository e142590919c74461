package server

import (
	"maps"
	"slices"
	"strings"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/configs"
	"github.com/warrenmq/warren/server/vhost"
)

// Vhost limits (max-connections, max-queues) and user limits (max-connections,
// max-channels), as RabbitMQ's: from the definitions files (a vhost's or user's limits belong
// to the files that declare it) or the management API (persisted in the API layer). A
// negative value is no limit, 0 allows nothing.

// RabbitMQ's limit names.
const (
	LimitMaxConnections = "max-connections"
	LimitMaxQueues      = "max-queues"
	LimitMaxChannels    = "max-channels"
)

// VhostLimitNames and UserLimitNames are the limits a vhost and a user may have.
var (
	VhostLimitNames = []string{LimitMaxConnections, LimitMaxQueues}
	UserLimitNames  = []string{LimitMaxConnections, LimitMaxChannels}
)

// LimitsInfo is a vhost's or a user's limits as the management API shows them: Name is the
// vhost or the user.
type LimitsInfo struct {
	Name      string
	Values    map[string]int64
	FromFiles bool
}

// Record kinds of the limits in the API layer's store.
const (
	recVhostLimits = 'l'
	recUserLimits  = 'L'
)

// limitVals are the limits in force for one vhost or user; -1 is none.
type limitVals struct{ conns, queues, channels int64 }

func newLimitVals(m map[string]int64) limitVals {
	get := func(name string) int64 {
		if v, ok := m[name]; ok && v >= 0 {
			return v
		}
		return -1
	}
	return limitVals{conns: get(LimitMaxConnections), queues: get(LimitMaxQueues), channels: get(LimitMaxChannels)}
}

// vhostLimitMap and userLimitMap are the files' limits by name.
func vhostLimitMap(l configs.VhostLimits) map[string]int64 {
	return limitMap(VhostLimitNames, l.MaxConnections, l.MaxQueues)
}

func userLimitMap(l configs.UserLimits) map[string]int64 {
	return limitMap(UserLimitNames, l.MaxConnections, l.MaxChannels)
}

func limitMap(names []string, vals ...configs.Limit) map[string]int64 {
	m := map[string]int64{}
	for i, v := range vals {
		if v != nil {
			m[names[i]] = *v
		}
	}
	return m
}

// liveVhostLimits lists the vhosts with limits, the files' and the API's. Callers hold applyMu.
func (s *Server) liveVhostLimits(files *configs.Definitions) []LimitsInfo {
	var out []LimitsInfo
	declared := map[string]bool{}
	for _, v := range files.Vhosts {
		declared[v.Name] = true
		if v.Limits.Set() {
			out = append(out, LimitsInfo{Name: v.Name, Values: vhostLimitMap(v.Limits), FromFiles: true})
		}
	}
	for name, l := range s.api.vhostLimits {
		if !declared[name] && len(l) > 0 {
			out = append(out, LimitsInfo{Name: name, Values: maps.Clone(l)})
		}
	}
	slices.SortFunc(out, func(a, b LimitsInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// liveUserLimits lists the users with limits, the files' and the API's. Callers hold applyMu.
func (s *Server) liveUserLimits(files *configs.Definitions) []LimitsInfo {
	var out []LimitsInfo
	declared := map[string]bool{}
	for _, u := range files.Users {
		declared[u.Name] = true
		if u.Limits.Set() {
			out = append(out, LimitsInfo{Name: u.Name, Values: userLimitMap(u.Limits), FromFiles: true})
		}
	}
	for name, l := range s.api.userLimits {
		if !declared[name] && len(l) > 0 {
			out = append(out, LimitsInfo{Name: name, Values: maps.Clone(l)})
		}
	}
	slices.SortFunc(out, func(a, b LimitsInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// setLimits gives an access snapshot the limits of files and the API. Callers hold applyMu.
func (s *Server) setLimits(a *Access, files *configs.Definitions) {
	for _, l := range s.liveVhostLimits(files) {
		if a.vlimits == nil {
			a.vlimits = map[string]limitVals{}
		}
		a.vlimits[l.Name] = newLimitVals(l.Values)
	}
	for _, l := range s.liveUserLimits(files) {
		if a.ulimits == nil {
			a.ulimits = map[string]limitVals{}
		}
		a.ulimits[l.Name] = newLimitVals(l.Values)
	}
}

// VhostLimits lists the vhosts' limits, sorted by vhost.
func (s *Server) VhostLimits() []LimitsInfo {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	return s.liveVhostLimits(s.fileDefs())
}

// UserLimits lists the users' limits, sorted by user.
func (s *Server) UserLimits() []LimitsInfo {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	return s.liveUserLimits(s.fileDefs())
}

// unknownLimit is RabbitMQ's refusal of a limit name it does not know.
func unknownLimit(name string, value int64, component string) error {
	return refused("Validation failed\n\nUnrecognised terms [{<<\"%s\">>,%d}] in %s\n", name, value, component)
}

// putVhostLimit sets one limit of vhost vh (value < 0: no limit).
func (s *Server) putVhostLimit(vh, name string, value int64) error {
	if !slices.Contains(VhostLimitNames, name) {
		return unknownLimit(name, value, "limits")
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if s.vhost(vh) == nil {
		return ErrVhostNotFound
	}
	for _, v := range s.fileDefs().Vhosts {
		if v.Name == vh {
			if cur, ok := vhostLimitMap(v.Limits)[name]; !ok || cur != value {
				return refused("vhost '%s' is declared in the definitions files; set its limits there and reload", vh)
			}
			return nil
		}
	}
	return s.putLimitLocked(s.api.vhostLimits, recVhostLimits, vh, name, &value, "vhost")
}

// deleteVhostLimit removes one limit of vhost vh; removing one that is not set is no error,
// as in RabbitMQ.
func (s *Server) deleteVhostLimit(vh, name string) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	for _, v := range s.fileDefs().Vhosts {
		if _, set := vhostLimitMap(v.Limits)[name]; v.Name == vh && set {
			return refused("vhost '%s' is declared in the definitions files; change its limits there and reload", vh)
		}
	}
	return s.putLimitLocked(s.api.vhostLimits, recVhostLimits, vh, name, nil, "vhost")
}

// putUserLimit sets one limit of user (value < 0: no limit).
func (s *Server) putUserLimit(user, name string, value int64) error {
	if !slices.Contains(UserLimitNames, name) {
		return refused("Unrecognised terms [{<<\"%s\">>,%d}] in user-limits", name, value)
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if !s.userExistsLocked(user) {
		return ErrUserNotFound
	}
	if fu, ok := s.fileUser(user); ok {
		if cur, ok := userLimitMap(fu.Limits)[name]; !ok || cur != value {
			return refused("user '%s' is declared in the definitions files; set its limits there and reload", user)
		}
		return nil
	}
	return s.putLimitLocked(s.api.userLimits, recUserLimits, user, name, &value, "user")
}

// deleteUserLimit removes one limit of user; removing one that is not set is no error.
func (s *Server) deleteUserLimit(user, name string) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if fu, ok := s.fileUser(user); ok {
		if _, set := userLimitMap(fu.Limits)[name]; set {
			return refused("user '%s' is declared in the definitions files; change its limits there and reload", user)
		}
	}
	return s.putLimitLocked(s.api.userLimits, recUserLimits, user, name, nil, "user")
}

// putLimitLocked sets (value non-nil) or removes one limit of owner in layer, persists the
// owner's limits and makes them live. Callers hold applyMu.
func (s *Server) putLimitLocked(layer map[string]map[string]int64, kind byte, owner, name string, value *int64, what string) error {
	next := maps.Clone(layer[owner])
	if next == nil {
		next = map[string]int64{}
	}
	if value != nil {
		next[name] = *value
	} else {
		if _, ok := next[name]; !ok {
			return nil
		}
		delete(next, name)
	}
	var rec any = next
	if len(next) == 0 {
		rec = nil
	}
	if err := s.persist(kind, rec, owner); err != nil {
		return err
	}
	if len(next) == 0 {
		delete(layer, owner)
	} else {
		layer[owner] = next
	}
	s.refreshLocked()
	ev := s.log.Info().Str(what, owner).Str("limit", name)
	if value != nil {
		ev = ev.Int64("value", *value)
	}
	ev.Bool("cleared", value == nil).Msg("limit set through the management API")
	return nil
}

// dropLimitsLocked forgets the API's limits of a deleted vhost or user. Callers hold applyMu.
func (s *Server) dropLimitsLocked(layer map[string]map[string]int64, kind byte, owner string) error {
	if _, ok := layer[owner]; !ok {
		return nil
	}
	if err := s.persist(kind, nil, owner); err != nil {
		return err
	}
	delete(layer, owner)
	return nil
}

// checkConnectionLimits refuses connection.open for c to vh over the vhost's or the user's
// max-connections, with RabbitMQ's 530 texts (vhost first, as rabbit_reader). Counting walks
// the connections only when a limit is set.
func (s *Server) checkConnectionLimits(c *conn, vh *vhost.Vhost) error {
	a := s.access.p.Load()
	vl, vok := a.vlimits[vh.Name()]
	ul, uok := a.ulimits[c.user]
	if (!vok || vl.conns < 0) && (!uok || ul.conns < 0) {
		return nil
	}
	var onVhost, ofUser int64
	s.mu.Lock()
	for o := range s.conns {
		// opened is stored after the handshake has set user and vh for good.
		if o == c || !o.opened.Load() {
			continue
		}
		if o.vh == vh {
			onVhost++
		}
		if o.user == c.user {
			ofUser++
		}
	}
	s.mu.Unlock()
	if vok && vl.conns >= 0 && onVhost >= vl.conns {
		return amqpwire.NewConnectionError(amqpwire.CodeNotAllowed, amqpwire.ClassConnection, amqpwire.MethodConnectionOpen,
			"access to vhost '%s' refused for user '%s': connection limit (%d) is reached", vh.Name(), c.user, vl.conns)
	}
	if uok && ul.conns >= 0 && ofUser >= ul.conns {
		return amqpwire.NewConnectionError(amqpwire.CodeNotAllowed, amqpwire.ClassConnection, amqpwire.MethodConnectionOpen,
			"connection refused for user '%s': user connection limit (%d) is reached", c.user, ul.conns)
	}
	return nil
}

// checkChannelLimit refuses a channel.open over the user's max-channels, counted over all
// the user's connections, with RabbitMQ's 530 (a connection error, as in RabbitMQ).
func (c *conn) checkChannelLimit() error {
	ul, ok := c.srv.access.p.Load().ulimits[c.user]
	if !ok || ul.channels < 0 {
		return nil
	}
	var n int64
	s := c.srv
	s.mu.Lock()
	for o := range s.conns {
		if o.opened.Load() && o.user == c.user {
			o.chmu.Lock()
			n += int64(len(o.channels))
			o.chmu.Unlock()
		}
	}
	s.mu.Unlock()
	if n < ul.channels {
		return nil
	}
	return amqpwire.NewConnectionError(amqpwire.CodeNotAllowed, amqpwire.ClassChannel, amqpwire.MethodChannelOpen,
		"number of channels opened for user '%s' has reached the maximum allowed user limit of (%d)", c.user, ul.channels)
}

// checkQueueLimit refuses declaring a new queue name in v over the vhost's max-queues, with
// RabbitMQ's 406. A redeclare of an existing queue is not counted.
func (s *Server) checkQueueLimit(v *vhost.Vhost, name string) error {
	vl, ok := s.access.p.Load().vlimits[v.Name()]
	if !ok || vl.queues < 0 || v.HasQueue(name) || int64(v.QueueCount()) < vl.queues {
		return nil
	}
	return amqpwire.NewChannelError(amqpwire.CodePreconditionFailed, amqpwire.ClassQueue, amqpwire.MethodQueueDeclare,
		"cannot declare queue '%s': queue limit in vhost '%s' (%d) is reached", name, v.Name(), vl.queues)
}

// configVhostLimits and configUserLimits are limits by name in the definitions' shape.
func configVhostLimits(m map[string]int64) configs.VhostLimits {
	return configs.VhostLimits{MaxConnections: limitPtr(m, LimitMaxConnections), MaxQueues: limitPtr(m, LimitMaxQueues)}
}

func configUserLimits(m map[string]int64) configs.UserLimits {
	return configs.UserLimits{MaxConnections: limitPtr(m, LimitMaxConnections), MaxChannels: limitPtr(m, LimitMaxChannels)}
}

func limitPtr(m map[string]int64, name string) configs.Limit {
	if v, ok := m[name]; ok {
		return &v
	}
	return nil
}
