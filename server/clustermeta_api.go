package server

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"

	"github.com/warrenmq/warren/configs"
	"github.com/warrenmq/warren/server/cluster"
)

// The management API's changes to vhosts, users, permissions, topic permissions, policies,
// limits and definitions imports. On a single node each calls its local function (put*,
// delete*, importDefinitions); in a cluster the input is checked here first (patterns,
// policy keys, limit names: bad input is refused without a proposal), then the change is
// proposed and every node's ApplyMeta calls that same local function. Its remaining checks
// read only replicated state and the definitions files (the same files on every node, see
// docs/cluster.md), so every node decides alike; the leader's answer is the caller's.

// Bodies of the API commands.
type (
	userPutArgs struct {
		Change UserChange `json:"change"`
	}
	permissionArgs struct {
		Configure string `json:"configure,omitempty"`
		Write     string `json:"write,omitempty"`
		Read      string `json:"read,omitempty"`
		Exchange  string `json:"exchange,omitempty"`
	}
	vhostPutArgs struct {
		Description string   `json:"description,omitempty"`
		Tags        []string `json:"tags,omitempty"`
		Creator     string   `json:"creator,omitempty"`
	}
	limitArgs struct {
		Limit string `json:"limit"`
		Value *int64 `json:"value,omitempty"` // nil deletes the limit
	}
	importArgs struct {
		Data []byte `json:"data"`
		User string `json:"user,omitempty"`
	}
	usersDeleteArgs struct {
		Names []string `json:"names"`
	}
)

// PutUser creates or changes a user made through the API (putUser). A password is hashed
// before the change is proposed: no password is ever written to the cluster's log.
func (s *Server) PutUser(name string, c UserChange) (created bool, err error) {
	if !s.clustered() {
		return s.putUser(name, c)
	}
	if name == "" {
		return false, refused("user name must not be empty")
	}
	if c.Password != nil {
		h, err := configs.HashPassword(*c.Password, algorithmName(c.HashingAlgorithm))
		if err != nil {
			return false, refused("%v", err)
		}
		c = UserChange{PasswordHash: &h, HashingAlgorithm: c.HashingAlgorithm, Tags: c.Tags}
	}
	_, existed := s.User(name)
	if err := s.propose(cluster.OpUserPut, "", name, userPutArgs{Change: c}, nil); err != nil {
		return false, err
	}
	return !existed, nil
}

// DeleteUser deletes a user made through the API (deleteUser).
func (s *Server) DeleteUser(name string) error {
	if !s.clustered() {
		return s.deleteUser(name)
	}
	return s.propose(cluster.OpUserDelete, "", name, nil, nil)
}

// DeleteUsers deletes several users (deleteUsers), as one change in a cluster.
func (s *Server) DeleteUsers(names []string) error {
	if !s.clustered() {
		return s.deleteUsers(names)
	}
	return s.propose(cluster.OpUserDelete, "", "", usersDeleteArgs{Names: names}, nil)
}

// PutPermission sets a user's permissions in a vhost (putPermission).
func (s *Server) PutPermission(vh, user, configure, write, read string) (created bool, err error) {
	if !s.clustered() {
		return s.putPermission(vh, user, configure, write, read)
	}
	if _, err := newAPIPermission(apiPermissionJSON{configure, write, read}); err != nil {
		return false, err
	}
	existed := slices.ContainsFunc(s.Permissions(), func(p PermissionInfo) bool { return p.Vhost == vh && p.User == user })
	err = s.propose(cluster.OpPermissionPut, vh, user, permissionArgs{Configure: configure, Write: write, Read: read}, nil)
	return err == nil && !existed, err
}

// DeletePermission deletes a user's permissions in a vhost (deletePermission).
func (s *Server) DeletePermission(vh, user string) error {
	if !s.clustered() {
		return s.deletePermission(vh, user)
	}
	return s.propose(cluster.OpPermissionDel, vh, user, nil, nil)
}

// PutTopicPermission sets a user's topic permission on an exchange (putTopicPermission).
func (s *Server) PutTopicPermission(vh, user, exchange, write, read string) (created bool, err error) {
	if !s.clustered() {
		return s.putTopicPermission(vh, user, exchange, write, read)
	}
	for _, re := range []string{write, read} {
		if _, err := regexp.Compile(re); err != nil {
			return false, refused("invalid regular expression %q: %v", re, err)
		}
	}
	existed := slices.ContainsFunc(s.TopicPermissions(), func(t TopicPermissionInfo) bool {
		return t.Vhost == vh && t.User == user && t.Exchange == exchange
	})
	err = s.propose(cluster.OpTopicPut, vh, user, permissionArgs{Exchange: exchange, Write: write, Read: read}, nil)
	return err == nil && !existed, err
}

// DeleteTopicPermissions deletes a user's topic permissions (deleteTopicPermissions).
func (s *Server) DeleteTopicPermissions(vh, user, exchange string) error {
	if !s.clustered() {
		return s.deleteTopicPermissions(vh, user, exchange)
	}
	return s.propose(cluster.OpTopicDelete, vh, user, permissionArgs{Exchange: exchange}, nil)
}

// PutPolicy creates or changes a policy (putPolicy).
func (s *Server) PutPolicy(vh, name string, c PolicyChange) (created bool, err error) {
	if !s.clustered() {
		return s.putPolicy(vh, name, c)
	}
	if name == "" {
		return false, refused("policy name must not be empty")
	}
	if _, err := checkPolicy(vh, name, apiPolicy{Pattern: c.Pattern, ApplyTo: applyTo(c.ApplyTo), Priority: c.Priority, Definition: c.Definition}); err != nil {
		return false, err
	}
	existed := slices.ContainsFunc(s.Policies(), func(p PolicyInfo) bool { return p.Vhost == vh && p.Name == name })
	err = s.propose(cluster.OpPolicyPut, vh, name, c, nil)
	return err == nil && !existed, err
}

// DeletePolicy deletes a policy (deletePolicy).
func (s *Server) DeletePolicy(vh, name string) error {
	if !s.clustered() {
		return s.deletePolicy(vh, name)
	}
	return s.propose(cluster.OpPolicyDelete, vh, name, nil, nil)
}

// PutVhost creates or changes a vhost (putVhost).
func (s *Server) PutVhost(name, description string, tags []string, creator string) (created bool, err error) {
	if !s.clustered() {
		return s.putVhost(name, description, tags, creator)
	}
	if name == "" {
		return false, refused("vhost name must not be empty")
	}
	existed := s.vhost(name) != nil
	err = s.propose(cluster.OpVhostPut, "", name, vhostPutArgs{Description: description, Tags: tags, Creator: creator}, nil)
	return err == nil && !existed, err
}

// DeleteVhost deletes a vhost with everything in it (deleteVhost).
func (s *Server) DeleteVhost(name string) error {
	if !s.clustered() {
		return s.deleteVhost(name)
	}
	return s.propose(cluster.OpVhostDelete, "", name, nil, nil)
}

// PutVhostLimit sets a vhost's limit (putVhostLimit).
func (s *Server) PutVhostLimit(vh, name string, value int64) error {
	if !s.clustered() {
		return s.putVhostLimit(vh, name, value)
	}
	if !slices.Contains(VhostLimitNames, name) {
		return unknownLimit(name, value, "limits")
	}
	return s.propose(cluster.OpVhostLimit, "", vh, limitArgs{Limit: name, Value: &value}, nil)
}

// DeleteVhostLimit removes a vhost's limit (deleteVhostLimit).
func (s *Server) DeleteVhostLimit(vh, name string) error {
	if !s.clustered() {
		return s.deleteVhostLimit(vh, name)
	}
	return s.propose(cluster.OpVhostLimit, "", vh, limitArgs{Limit: name}, nil)
}

// PutUserLimit sets a user's limit (putUserLimit).
func (s *Server) PutUserLimit(user, name string, value int64) error {
	if !s.clustered() {
		return s.putUserLimit(user, name, value)
	}
	if !slices.Contains(UserLimitNames, name) {
		return refused("Unrecognised terms [{<<\"%s\">>,%d}] in user-limits", name, value)
	}
	return s.propose(cluster.OpUserLimit, "", user, limitArgs{Limit: name, Value: &value}, nil)
}

// DeleteUserLimit removes a user's limit (deleteUserLimit).
func (s *Server) DeleteUserLimit(user, name string) error {
	if !s.clustered() {
		return s.deleteUserLimit(user, name)
	}
	return s.propose(cluster.OpUserLimit, "", user, limitArgs{Limit: name}, nil)
}

// ImportDefinitions merges RabbitMQ's definitions JSON (importDefinitions). In a cluster the
// whole document is checked on this node first, so a refused one changes nothing. Then its
// users, vhosts, permissions, policies, exchanges and the bindings between exchanges are one
// change, applied on every node; its queues and the bindings to them follow, each declared
// as through PUT /api/queues and POST /api/bindings (importQueues): every queue gets its
// record, a classic one held by this node, a quorum one by its members, so that every node
// routes to the same queue.
func (s *Server) ImportDefinitions(data []byte, vh, user string) error {
	if !s.clustered() {
		return s.importDefinitions(data, vh, user)
	}
	data, err := hashImportPasswords(data)
	if err != nil {
		return err
	}
	plan, err := s.planImport(data, vh)
	if err != nil {
		return err
	}
	rest, err := withoutQueues(data)
	if err != nil {
		return err
	}
	if err := s.propose(cluster.OpImport, vh, "", importArgs{Data: rest, User: user}, nil); err != nil {
		return err
	}
	return s.importQueues(plan.topo)
}

// hashImportPasswords replaces the plain-text passwords of a definitions document's users by
// their hashes, so that no password is written to the cluster's log. The rest of the document
// is kept byte for byte; one importDefinitions cannot read is returned as it is (it refuses it).
func hashImportPasswords(data []byte) ([]byte, error) {
	var doc map[string]json.RawMessage
	if json.Unmarshal(data, &doc) != nil || doc["users"] == nil {
		return data, nil
	}
	var users []map[string]json.RawMessage
	if json.Unmarshal(doc["users"], &users) != nil {
		return data, nil
	}
	changed := false
	for _, u := range users {
		var pw *string
		if json.Unmarshal(u["password"], &pw) != nil || pw == nil {
			continue
		}
		var alg string
		_ = json.Unmarshal(u["hashing_algorithm"], &alg)
		h, err := configs.HashPassword(*pw, algorithmName(alg))
		if err != nil {
			return nil, refused("%v", err)
		}
		delete(u, "password")
		u["password_hash"] = mustJSON(h)
		changed = true
	}
	if !changed {
		return data, nil
	}
	doc["users"] = mustJSON(users)
	return mustJSON(doc), nil
}

// applyAPI applies one of the API's commands with the local function.
func (s *Server) applyAPI(c cluster.Command) error {
	decode := func(v any) error {
		if len(c.Body) == 0 {
			return nil
		}
		if err := json.Unmarshal(c.Body, v); err != nil {
			return fmt.Errorf("%s: %w", c.Op, err)
		}
		return nil
	}
	var err error
	switch c.Op {
	case cluster.OpUserPut:
		var a userPutArgs
		if err = decode(&a); err == nil {
			_, err = s.putUser(c.Name, a.Change)
		}
	case cluster.OpUserDelete:
		var a usersDeleteArgs
		if err = decode(&a); err == nil {
			if a.Names != nil {
				err = s.deleteUsers(a.Names)
			} else {
				err = s.deleteUser(c.Name)
			}
		}
	case cluster.OpPermissionPut:
		var a permissionArgs
		if err = decode(&a); err == nil {
			_, err = s.putPermission(c.Vhost, c.Name, a.Configure, a.Write, a.Read)
		}
	case cluster.OpPermissionDel:
		err = s.deletePermission(c.Vhost, c.Name)
	case cluster.OpTopicPut:
		var a permissionArgs
		if err = decode(&a); err == nil {
			_, err = s.putTopicPermission(c.Vhost, c.Name, a.Exchange, a.Write, a.Read)
		}
	case cluster.OpTopicDelete:
		var a permissionArgs
		if err = decode(&a); err == nil {
			err = s.deleteTopicPermissions(c.Vhost, c.Name, a.Exchange)
		}
	case cluster.OpPolicyPut:
		var a PolicyChange
		if err = decode(&a); err == nil {
			_, err = s.putPolicy(c.Vhost, c.Name, a)
		}
	case cluster.OpPolicyDelete:
		err = s.deletePolicy(c.Vhost, c.Name)
	case cluster.OpVhostPut:
		var a vhostPutArgs
		if err = decode(&a); err == nil {
			_, err = s.putVhost(c.Name, a.Description, a.Tags, a.Creator)
		}
	case cluster.OpVhostDelete:
		err = s.deleteVhost(c.Name)
	case cluster.OpVhostLimit, cluster.OpUserLimit:
		var a limitArgs
		if err = decode(&a); err == nil {
			err = s.applyLimit(c.Op, c.Name, a)
		}
	case cluster.OpImport:
		var a importArgs
		if err = decode(&a); err == nil {
			err = s.importDefinitions(a.Data, c.Vhost, a.User)
		}
	default:
		err = fmt.Errorf("unknown metadata op %q", c.Op)
	}
	return err
}

func (s *Server) applyLimit(op, owner string, a limitArgs) error {
	switch {
	case op == cluster.OpVhostLimit && a.Value != nil:
		return s.putVhostLimit(owner, a.Limit, *a.Value)
	case op == cluster.OpVhostLimit:
		return s.deleteVhostLimit(owner, a.Limit)
	case a.Value != nil:
		return s.putUserLimit(owner, a.Limit, *a.Value)
	}
	return s.deleteUserLimit(owner, a.Limit)
}
