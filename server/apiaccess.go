package server

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/warrenmq/warren/configs"
)

// Errors of the management API's operations (apiaccess.go, management_topology.go, ...).
var (
	// ErrNotFound: the object named does not exist (RabbitMQ's resource_exists false): a
	// user, permission, vhost, policy, exchange, queue or binding.
	ErrNotFound = errors.New("not found")
	// ErrVhostNotFound: the vhost named does not exist.
	ErrVhostNotFound = errors.New("vhost_not_found")
	// ErrUserNotFound: the user named does not exist.
	ErrUserNotFound = errors.New("user not found")
)

// RefusedError is a change the broker refuses: RabbitMQ answers 400 with Reason.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return e.Reason }

func refused(format string, args ...any) error {
	return &RefusedError{Reason: fmt.Sprintf(format, args...)}
}

// UserInfo is a user as the management API shows it. FromFiles says a definitions file
// declares it (the API cannot change it).
type UserInfo struct {
	Name, PasswordHash, HashingAlgorithm string
	Tags                                 []string
	FromFiles                            bool
	Limits                               map[string]int64 // max-connections, max-channels; nil: none
}

// PermissionInfo is a user's permissions in a vhost as RabbitMQ's regular expressions.
type PermissionInfo struct {
	User, Vhost, Configure, Write, Read string
	FromFiles                           bool
}

// TopicPermissionInfo is a user's topic permission on one exchange of a vhost.
type TopicPermissionInfo struct {
	User, Vhost, Exchange, Write, Read string
	FromFiles                          bool
}

// PolicyInfo is a policy in RabbitMQ's shape: Pattern a regular expression, Definition its keys.
type PolicyInfo struct {
	Vhost, Name, Pattern, ApplyTo string
	Priority                      int
	Definition                    map[string]any
	FromFiles                     bool
}

// VhostInfo is a vhost's metadata.
type VhostInfo struct {
	Name, Description string
	Tags              []string
	FromFiles         bool
}

// UserChange is a PUT of a user: Password or PasswordHash (neither: the user cannot log in
// with a password), the hash's algorithm ("" is sha256) and the tags.
type UserChange struct {
	Password, PasswordHash *string
	HashingAlgorithm       string
	Tags                   []string
}

// translatePattern checks a RabbitMQ pattern (a regular expression) and translates it to the
// glob Warren matches with, refusing what a glob cannot honour exactly.
func translatePattern(re string) (string, error) {
	if _, err := regexp.Compile(re); err != nil {
		return "", refused("invalid regular expression %q: %v", re, err)
	}
	g, err := configs.RegexToGlob(re)
	if err != nil {
		return "", refused("pattern %q cannot be honoured exactly: Warren matches permission and policy patterns as globs and translates only "+
			"the common shapes of regular expressions (^prefix, suffix$, .*, ., (a|b), literal text with \\. escapes); "+
			"character classes, repetition other than .* and escapes such as \\d are refused", re)
	}
	return g, nil
}

// defaultUser is the first-boot user guest/guest, as RabbitMQ's.
func defaultUser() apiUser {
	h, err := configs.HashPassword("guest", "")
	if err != nil { // crypto/rand failed: the account matches no password
		h = ""
	}
	return apiUser{PasswordHash: h, HashingAlgorithm: "rabbit_password_hashing_sha256", Tags: []string{"administrator"}}
}

// seedLocked copies the default user and its permissions into the API layer the first time
// the API changes users or permissions while the default is live, so that a change (deleting
// guest, most often) persists, as RabbitMQ's first boot writes guest to its database.
func (s *Server) seedLocked() error {
	if !s.defaultActive(s.fileDefs()) {
		return nil
	}
	g := defaultUser()
	p := apiPermission{Configure: ".*", Write: ".*", Read: ".*", globs: [3]string{"*", "*", "*"}}
	for _, step := range []error{
		s.persist(recUser, g, "guest"),
		s.persist(recPermission, apiPermissionJSON{".*", ".*", ".*"}, "/", "guest"),
		s.persist(recSeeded, struct{}{}),
	} {
		if step != nil {
			return step
		}
	}
	s.api.users["guest"] = g
	s.api.perms[vhostUser{"/", "guest"}] = p
	s.api.seeded = true
	return nil
}

// liveUsers lists every user: the files', the API's and the default while it is live.
// Callers hold applyMu.
func (s *Server) liveUsers() []UserInfo {
	files := s.fileDefs()
	var out []UserInfo
	have := map[string]bool{}
	for _, u := range files.Users {
		have[u.Name] = true
		out = append(out, UserInfo{Name: u.Name, PasswordHash: u.PasswordHash, HashingAlgorithm: algorithmName(u.HashingAlgorithm),
			Tags: slices.Clone(u.Tags), FromFiles: true})
	}
	users := s.api.users
	if s.defaultActive(files) && len(users) == 0 {
		users = map[string]apiUser{"guest": s.defaultHash()}
	}
	for name, u := range users {
		if !have[name] {
			out = append(out, UserInfo{Name: name, PasswordHash: u.PasswordHash, HashingAlgorithm: algorithmName(u.HashingAlgorithm),
				Tags: slices.Clone(u.Tags)})
		}
	}
	slices.SortFunc(out, func(a, b UserInfo) int { return strings.Compare(a.Name, b.Name) })
	limits := map[string]map[string]int64{}
	for _, l := range s.liveUserLimits(files) {
		limits[l.Name] = l.Values
	}
	for i := range out {
		out[i].Limits = limits[out[i].Name]
	}
	return out
}

// defaultHash is the default user's record, hashed once so listings show a stable hash.
func (s *Server) defaultHash() apiUser {
	if s.api.defaultUser.PasswordHash == "" {
		s.api.defaultUser = defaultUser()
	}
	return s.api.defaultUser
}

func algorithmName(a string) string {
	if a == "" {
		return "rabbit_password_hashing_sha256"
	}
	return a
}

// Users lists every user, sorted by name.
func (s *Server) Users() []UserInfo {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	return s.liveUsers()
}

// User returns the named user.
func (s *Server) User(name string) (UserInfo, bool) {
	for _, u := range s.Users() {
		if u.Name == name {
			return u, true
		}
	}
	return UserInfo{}, false
}

// userExistsLocked says whether the named user is live. Callers hold applyMu.
func (s *Server) userExistsLocked(name string) bool {
	for _, u := range s.liveUsers() {
		if u.Name == name {
			return true
		}
	}
	return false
}

// fileUser returns the files' user of that name.
func (s *Server) fileUser(name string) (configs.User, bool) {
	for _, u := range s.fileDefs().Users {
		if u.Name == name {
			return u, true
		}
	}
	return configs.User{}, false
}

// putUser creates or replaces a user; created says it did not exist. A user the definitions
// files declare can only be "changed" to what it already is.
func (s *Server) putUser(name string, c UserChange) (created bool, err error) {
	if name == "" {
		return false, refused("user name must not be empty")
	}
	alg := algorithmName(c.HashingAlgorithm)
	u := apiUser{HashingAlgorithm: alg, Tags: c.Tags}
	switch {
	case c.Password != nil:
		if u.PasswordHash, err = configs.HashPassword(*c.Password, alg); err != nil {
			return false, refused("%v", err)
		}
	case c.PasswordHash != nil && *c.PasswordHash != "":
		u.PasswordHash = *c.PasswordHash
		if _, err := configs.ImportRabbitMQ("request", mustJSON(map[string]any{"users": []any{map[string]any{
			"name": name, "password_hash": u.PasswordHash, "hashing_algorithm": alg}}})); err != nil {
			return false, refused("%s", errorReason(err))
		}
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if fu, ok := s.fileUser(name); ok {
		same := slices.Equal(fu.Tags, c.Tags) && algorithmName(fu.HashingAlgorithm) == alg &&
			(c.Password != nil && fu.CheckPassword(*c.Password) || c.PasswordHash != nil && *c.PasswordHash == fu.PasswordHash)
		if !same {
			return false, refused("user '%s' is declared in the definitions files; change it there and reload", name)
		}
		return false, nil
	}
	if err := s.seedLocked(); err != nil {
		return false, err
	}
	_, existed := s.api.users[name]
	if err := s.persist(recUser, u, name); err != nil {
		return false, err
	}
	s.api.users[name] = u
	s.refreshLocked()
	s.log.Info().Str("user", name).Strs("tags", u.Tags).Bool("created", !existed).Msg("user set through the management API")
	return !existed, nil
}

// deleteUser deletes a user made through the API, with its permissions and topic
// permissions, and closes its connections.
func (s *Server) deleteUser(name string) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	return s.deleteUserLocked(name)
}

// deleteUsers deletes several users; the first that cannot be deleted stops it, after the
// ones before it are gone (RabbitMQ's bulk-delete does the same).
func (s *Server) deleteUsers(names []string) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	for _, n := range names {
		if err := s.deleteUserLocked(n); err != nil {
			return fmt.Errorf("user '%s': %w", n, err)
		}
	}
	return nil
}

func (s *Server) deleteUserLocked(name string) error {
	if _, ok := s.fileUser(name); ok {
		return refused("user '%s' is declared in the definitions files; remove it there and reload", name)
	}
	if !s.userExistsLocked(name) {
		return ErrNotFound
	}
	if err := s.seedLocked(); err != nil {
		return err
	}
	for k := range s.api.perms {
		if k.user == name {
			if err := s.persist(recPermission, nil, k.vhost, k.user); err != nil {
				return err
			}
			delete(s.api.perms, k)
		}
	}
	for k := range s.api.topics {
		if k.user == name {
			if err := s.persist(recTopic, nil, k.vhost, k.user, k.exchange); err != nil {
				return err
			}
			delete(s.api.topics, k)
		}
	}
	if err := s.dropLimitsLocked(s.api.userLimits, recUserLimits, name); err != nil {
		return err
	}
	if err := s.persist(recUser, nil, name); err != nil {
		return err
	}
	delete(s.api.users, name)
	s.refreshLocked()
	s.log.Info().Str("user", name).Msg("user deleted through the management API")
	return nil
}

// livePermissions lists every permission, the files' and the API's. Callers hold applyMu.
func (s *Server) livePermissions() []PermissionInfo {
	files := s.fileDefs()
	var out []PermissionInfo
	seen := map[vhostUser]bool{}
	for _, p := range files.Permissions {
		seen[vhostUser{p.Vhost, p.User}] = true
		out = append(out, PermissionInfo{User: p.User, Vhost: p.Vhost, Configure: configs.GlobToRegex(p.Configure),
			Write: configs.GlobToRegex(p.Write), Read: configs.GlobToRegex(p.Read), FromFiles: true})
	}
	perms := s.api.perms
	if s.defaultActive(files) && len(s.api.users) == 0 {
		perms = map[vhostUser]apiPermission{{"/", "guest"}: {Configure: ".*", Write: ".*", Read: ".*"}}
	}
	for k, p := range perms {
		if !seen[k] {
			out = append(out, PermissionInfo{User: k.user, Vhost: k.vhost, Configure: p.Configure, Write: p.Write, Read: p.Read})
		}
	}
	slices.SortFunc(out, func(a, b PermissionInfo) int {
		return cmpOr(strings.Compare(a.Vhost, b.Vhost), strings.Compare(a.User, b.User))
	})
	return out
}

func cmpOr(cs ...int) int {
	for _, c := range cs {
		if c != 0 {
			return c
		}
	}
	return 0
}

// Permissions lists every user's permissions, sorted by vhost and user.
func (s *Server) Permissions() []PermissionInfo {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	return s.livePermissions()
}

// putPermission sets user's permissions in vhost from RabbitMQ's regular expressions.
func (s *Server) putPermission(vh, user, configure, write, read string) (created bool, err error) {
	p, err := newAPIPermission(apiPermissionJSON{configure, write, read})
	if err != nil {
		return false, err
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if s.vhost(vh) == nil || !s.userExistsLocked(user) {
		return false, refused("vhost_or_user_not_found")
	}
	k := vhostUser{vh, user}
	for _, fp := range s.fileDefs().Permissions {
		if fp.Vhost == vh && fp.User == user {
			if fp.Configure != p.globs[0] || fp.Write != p.globs[1] || fp.Read != p.globs[2] {
				return false, refused("the permissions of user '%s' in vhost '%s' are declared in the definitions files; change them there and reload", user, vh)
			}
			return false, nil
		}
	}
	if err := s.seedLocked(); err != nil {
		return false, err
	}
	_, existed := s.api.perms[k]
	if err := s.persist(recPermission, apiPermissionJSON{configure, write, read}, vh, user); err != nil {
		return false, err
	}
	s.api.perms[k] = p
	s.refreshLocked()
	s.log.Info().Str("user", user).Str("vhost", vh).Str("configure", configure).Str("write", write).Str("read", read).
		Msg("permissions set through the management API")
	return !existed, nil
}

// deletePermission removes user's permissions in vhost and closes the user's connections to it.
func (s *Server) deletePermission(vh, user string) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	for _, fp := range s.fileDefs().Permissions {
		if fp.Vhost == vh && fp.User == user {
			return refused("the permissions of user '%s' in vhost '%s' are declared in the definitions files; remove them there and reload", user, vh)
		}
	}
	if err := s.seedLocked(); err != nil {
		return err
	}
	k := vhostUser{vh, user}
	if _, ok := s.api.perms[k]; !ok {
		return ErrNotFound
	}
	if err := s.persist(recPermission, nil, vh, user); err != nil {
		return err
	}
	delete(s.api.perms, k)
	s.refreshLocked()
	s.log.Info().Str("user", user).Str("vhost", vh).Msg("permissions deleted through the management API")
	return nil
}

// TopicPermissions lists the topic permissions, the files' and the API's, sorted by vhost,
// user and exchange.
func (s *Server) TopicPermissions() []TopicPermissionInfo {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	var out []TopicPermissionInfo
	seen := map[topicKey]bool{}
	for _, t := range s.fileDefs().TopicPermissions {
		seen[topicKey{t.Vhost, t.User, t.Exchange}] = true
		out = append(out, TopicPermissionInfo{User: t.User, Vhost: t.Vhost, Exchange: t.Exchange, Write: t.Write, Read: t.Read, FromFiles: true})
	}
	for k, t := range s.api.topics {
		if !seen[k] {
			out = append(out, TopicPermissionInfo{User: k.user, Vhost: k.vhost, Exchange: k.exchange, Write: t.Write, Read: t.Read})
		}
	}
	slices.SortFunc(out, func(a, b TopicPermissionInfo) int {
		return cmpOr(strings.Compare(a.Vhost, b.Vhost), strings.Compare(a.User, b.User), strings.Compare(a.Exchange, b.Exchange))
	})
	return out
}

// fileTopic returns the files' topic permission of user on exchange in vh.
func (s *Server) fileTopic(vh, user, exchange string) (configs.TopicPermission, bool) {
	for _, t := range s.fileDefs().TopicPermissions {
		if t.Vhost == vh && t.User == user && t.Exchange == exchange {
			return t, true
		}
	}
	return configs.TopicPermission{}, false
}

// putTopicPermission sets user's topic permission on exchange in vhost.
func (s *Server) putTopicPermission(vh, user, exchange, write, read string) (created bool, err error) {
	for _, re := range []string{write, read} {
		if _, err := regexp.Compile(re); err != nil {
			return false, refused("invalid regular expression %q: %v", re, err)
		}
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if s.vhost(vh) == nil || !s.userExistsLocked(user) {
		return false, refused("vhost_or_user_not_found")
	}
	if ft, ok := s.fileTopic(vh, user, exchange); ok {
		if ft.Write != write || ft.Read != read {
			return false, refused("the topic permission of user '%s' on exchange '%s' in vhost '%s' is declared in the definitions files; change it there and reload",
				user, exchange, vh)
		}
		return false, nil
	}
	k := topicKey{vh, user, exchange}
	_, existed := s.api.topics[k]
	t := apiTopic{Write: write, Read: read}
	if err := s.persist(recTopic, t, vh, user, exchange); err != nil {
		return false, err
	}
	s.api.topics[k] = t
	s.refreshLocked()
	s.log.Info().Str("user", user).Str("vhost", vh).Str("exchange", exchange).Msg("topic permission set through the management API")
	return !existed, nil
}

// deleteTopicPermissions removes user's topic permissions in vhost: on exchange, or on every
// exchange when exchange is "".
func (s *Server) deleteTopicPermissions(vh, user, exchange string) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	for _, t := range s.fileDefs().TopicPermissions {
		if t.Vhost == vh && t.User == user && (exchange == "" || t.Exchange == exchange) {
			return refused("the topic permissions of user '%s' in vhost '%s' are declared in the definitions files; remove them there and reload", user, vh)
		}
	}
	n := 0
	for k := range s.api.topics {
		if k.vhost == vh && k.user == user && (exchange == "" || k.exchange == exchange) {
			if err := s.persist(recTopic, nil, k.vhost, k.user, k.exchange); err != nil {
				return err
			}
			delete(s.api.topics, k)
			n++
		}
	}
	if n == 0 {
		return ErrNotFound
	}
	s.refreshLocked()
	s.log.Info().Str("user", user).Str("vhost", vh).Str("exchange", exchange).Int("deleted", n).
		Msg("topic permissions deleted through the management API")
	return nil
}
