package mgmt

// writeSource is what the topology endpoints (declaring and deleting exchanges, queues and
// bindings) need from the broker.
type writeSource interface{}

// writeEndpoints are the endpoints that declare and delete exchanges, queues and bindings.
func (a *api) writeEndpoints() []endpoint { return nil }
