package server

import (
	"crypto/subtle"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/warrenmq/warren/amqpwire"
	"github.com/warrenmq/warren/configs"
)

// Account is a user who may log in. Check verifies a password (against a stored hash);
// Loopback users may only connect from a loopback address (RabbitMQ's loopback_users).
type Account struct {
	Name     string
	Check    func(password string) bool
	Tags     []string
	Loopback bool
}

// Permissions are one user's rights in one vhost: configure (declare, delete), write
// (publish, bind a destination) and read (consume, get, purge, bind a source). The patterns
// are the definitions files' (configs.Pattern); a nil one matches nothing.
type Permissions struct {
	Configure, Write, Read *configs.Pattern
}

// Grant gives User the Permissions in Vhost.
type Grant struct {
	User, Vhost string
	Permissions
}

// Access is an immutable snapshot of who may log in and what they may do. A reload swaps in a
// new one; connections check the current snapshot at every operation.
type Access struct {
	users map[string]*Account
	perms map[string]map[string]*Permissions // user → vhost
	// topics are the topic permissions: user → (vhost, exchange). A user without any has
	// no entry, so checking them costs one map lookup.
	topics map[string]map[topicScope]*topicPerm
	// vlimits and ulimits are the vhosts' and users' limits (accesslimits.go); a vhost or
	// user without any has no entry.
	vlimits, ulimits map[string]limitVals
}

// TopicGrant is a user's topic permission on one exchange of a vhost: RabbitMQ's regular
// expressions for the routing keys the user may publish with (Write) and bind with (Read).
type TopicGrant struct {
	User, Vhost, Exchange, Write, Read string
}

type topicScope struct{ vhost, exchange string }

// topicPerm is a topic permission compiled for its user and vhost; a nil pattern matches
// nothing (its expansion did not compile).
type topicPerm struct{ write, read *regexp.Regexp }

// compileTopicPattern is RabbitMQ's: "" means "^$", and {username} and {vhost} are replaced
// by the user's name and the vhost (as text, not quoted) before the expression is compiled.
// RabbitMQ expands {client_id} only for MQTT and other plugins' connections, never for AMQP
// 0-9-1, so it stays literal here too.
func compileTopicPattern(re, user, vhost string) *regexp.Regexp {
	if re == "" {
		re = "^$"
	}
	re = strings.NewReplacer("{username}", user, "{vhost}", vhost).Replace(re)
	c, err := regexp.Compile(re)
	if err != nil {
		return nil
	}
	return c
}

// setTopics gives the snapshot its topic permissions. A grant for a user not in the
// snapshot is ignored: that user cannot log in.
func (a *Access) setTopics(grants []TopicGrant) {
	for _, g := range grants {
		if a.users[g.User] == nil {
			continue
		}
		if a.topics == nil {
			a.topics = map[string]map[topicScope]*topicPerm{}
		}
		if a.topics[g.User] == nil {
			a.topics[g.User] = map[topicScope]*topicPerm{}
		}
		a.topics[g.User][topicScope{g.Vhost, g.Exchange}] = &topicPerm{
			write: compileTopicPattern(g.Write, g.User, g.Vhost), read: compileTopicPattern(g.Read, g.User, g.Vhost)}
	}
}

// NewAccess builds an access snapshot. A grant for a user not in accounts is an error.
func NewAccess(accounts []Account, grants []Grant) (*Access, error) {
	a := &Access{users: make(map[string]*Account, len(accounts)), perms: map[string]map[string]*Permissions{}}
	for i := range accounts {
		u := accounts[i]
		a.users[u.Name] = &u
	}
	for _, g := range grants {
		if a.users[g.User] == nil {
			return nil, fmt.Errorf("permission for unknown user %q", g.User)
		}
		if a.perms[g.User] == nil {
			a.perms[g.User] = map[string]*Permissions{}
		}
		p := g.Permissions
		a.perms[g.User][g.Vhost] = &p
	}
	return a, nil
}

// DefaultAccess is RabbitMQ's first-boot default: guest/guest with every permission on "/",
// from loopback addresses only when "guest" is one of loopbackUsers.
func DefaultAccess(loopbackUsers []string) *Access {
	all, _ := configs.CompilePattern("*") // cannot fail
	a, _ := NewAccess(
		[]Account{{Name: "guest", Tags: []string{"administrator"}, Loopback: slices.Contains(loopbackUsers, "guest"),
			Check: func(p string) bool { return subtle.ConstantTimeCompare([]byte(p), []byte("guest")) == 1 }}},
		[]Grant{{User: "guest", Vhost: "/", Permissions: Permissions{Configure: all, Write: all, Read: all}}})
	return a
}

// login returns the account when user exists and password is right.
func (a *Access) login(user, password string) (*Account, bool) {
	u := a.users[user]
	if u == nil || u.Check == nil || !u.Check(password) {
		return nil, false
	}
	return u, true
}

// permissions returns user's rights in vhost, nil when the user has no access to it.
func (a *Access) permissions(user, vhost string) *Permissions {
	return a.perms[user][vhost]
}

// Users lists the accounts, for export.
func (a *Access) Users() []Account {
	out := make([]Account, 0, len(a.users))
	for _, u := range a.users {
		out = append(out, *u)
	}
	return out
}

// Grants lists every user's permissions, for export.
func (a *Access) Grants() []Grant {
	var out []Grant
	for user, vs := range a.perms {
		for vh, p := range vs {
			out = append(out, Grant{User: user, Vhost: vh, Permissions: *p})
		}
	}
	return out
}

// topicAllowed says whether user may use key on the topic exchange of vhost: publish with it
// (permWrite) or bind with it (permRead). Without a topic permission for that exchange
// everything is allowed, as in RabbitMQ.
func (a *Access) topicAllowed(kind permKind, user, vhost, exchange, key string) bool {
	tp := a.topics[user][topicScope{vhost, exchange}]
	if tp == nil {
		return true
	}
	re := tp.read
	if kind == permWrite {
		re = tp.write
	}
	return re != nil && re.MatchString(key)
}

// accessHolder is the server's current snapshot.
type accessHolder struct{ p atomic.Pointer[Access] }

// Permission kinds, RabbitMQ's names.
type permKind uint8

const (
	permConfigure permKind = iota
	permWrite
	permRead
)

// resource kinds in RabbitMQ's refusal texts.
const (
	resQueue    = "queue"
	resExchange = "exchange"
)

// checkUserAccess is 403 ACCESS_REFUSED when user lacks kind on the named resource in vh
// (RabbitMQ names the default exchange amq.default for permissions); for a connection
// (conn.checkAccess) and for the management API, which has none.
func (s *Server) checkUserAccess(user, vh string, kind permKind, resource, name string) error {
	if resource == resExchange && name == "" {
		name = "amq.default"
	}
	p := s.access.p.Load().permissions(user, vh)
	var ok bool
	if p != nil {
		switch kind {
		case permConfigure:
			ok = p.Configure.Match(name)
		case permWrite:
			ok = p.Write.Match(name)
		case permRead:
			ok = p.Read.Match(name)
		}
	}
	if ok {
		return nil
	}
	return amqpwire.NewChannelError(amqpwire.CodeAccessRefused, 0, 0,
		"access to %s '%s' in vhost '%s' refused for user '%s'", resource, name, vh, user)
}

// checkAccess refuses with 403 ACCESS_REFUSED when the connection's user lacks kind on the
// named resource. RabbitMQ names the default exchange amq.default for permissions.
func (c *conn) checkAccess(kind permKind, resource, name string) error {
	return c.srv.checkUserAccess(c.user, c.vh.Name(), kind, resource, name)
}

// hasTopicPermissions says whether the connection's user has any topic permission: when not
// (the common case) no exchange needs to be looked up for the topic check.
func (c *conn) hasTopicPermissions() bool {
	return c.srv.access.p.Load().topics[c.user] != nil
}

// checkTopic refuses with RabbitMQ's 403 a routing key (publish, permWrite) or binding key
// (bind and unbind, permRead) that the user's topic permission on a topic exchange does not
// allow. Other exchange kinds are not checked, as in RabbitMQ.
func (c *conn) checkTopic(kind permKind, xKind, exchange, key string) error {
	return c.srv.checkUserTopic(c.user, c.vh.Name(), kind, xKind, exchange, key)
}

// checkUserTopic is conn.checkTopic for user in vh, also for the management API's publishes
// and bindings (RabbitMQ makes those through a channel, which checks them).
func (s *Server) checkUserTopic(user, vh string, kind permKind, xKind, exchange, key string) error {
	if xKind != "topic" {
		return nil
	}
	a := s.access.p.Load()
	if a.topics[user] == nil || a.topicAllowed(kind, user, vh, exchange, key) {
		return nil
	}
	return amqpwire.NewChannelError(amqpwire.CodeAccessRefused, 0, 0,
		"access to topic '%s' in exchange '%s' in vhost '%s' refused for user '%s'", key, exchange, vh, user)
}
