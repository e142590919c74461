package mgmt

// accessSource is what the access-control and definitions endpoints (vhosts, users,
// permissions, topic permissions, policies, definitions) need from the broker.
type accessSource interface{}

// accessEndpoints are the endpoints of vhosts, users, permissions, policies and definitions.
func (a *api) accessEndpoints() []endpoint { return nil }
