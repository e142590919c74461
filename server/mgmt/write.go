package mgmt

// writeSource is what the write side of the API (declaring and deleting objects, access
// control, definitions) needs from the broker.
type writeSource interface{}

// writeEndpoints are the endpoints that create, change and delete objects.
func (a *api) writeEndpoints() []endpoint { return nil }
