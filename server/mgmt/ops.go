package mgmt

// opsSource is what the operations endpoints (queue contents, get, publish, health checks)
// need from the broker.
type opsSource interface{}

// opsEndpoints are the endpoints that act on queue contents and check the broker's health.
func (a *api) opsEndpoints() []endpoint { return nil }
