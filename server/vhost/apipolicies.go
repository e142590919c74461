package vhost

// AddPolicies adds to t policies of vhost that are not the files' (the management API's), so
// that applying t sets the vhost's whole list of policies at once and queues the files do not
// concern keep their effective policy throughout. The files' own are still t's alone to record.
func (t *Topology) AddPolicies(vhost string, ps []Policy) {
	t.policies[vhost] = append(t.policies[vhost], ps...)
}
