package server

import (
	"crypto/subtle"
	"fmt"
	"slices"
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

// checkAccess refuses with 403 ACCESS_REFUSED when the connection's user lacks kind on the
// named resource. RabbitMQ names the default exchange amq.default for permissions.
func (c *conn) checkAccess(kind permKind, resource, name string) error {
	if resource == resExchange && name == "" {
		name = "amq.default"
	}
	p := c.srv.access.p.Load().permissions(c.user, c.vh.Name())
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
		"access to %s '%s' in vhost '%s' refused for user '%s'", resource, name, c.vh.Name(), c.user)
}
