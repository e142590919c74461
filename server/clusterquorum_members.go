package server

import "errors"

// TEMP stub of the lead engineer's server side (reverted when it lands in main): the
// declarations the management API compiles against; every method refuses.

// QuorumMemberResult is what a grow or shrink did to one queue.
type QuorumMemberResult struct {
	Vhost string `json:"vhost"`
	Name  string `json:"name"`
	Size  int    `json:"size"`            // members after the change
	Error string `json:"error,omitempty"` // why this queue was left as it was
}

// ErrNotClustered: the node runs alone.
var ErrNotClustered = errors.New("this node runs alone (no cluster-peers)")

// ErrNoSuchNode: the node named is not a cluster member.
var ErrNoSuchNode = errors.New("no such cluster member")

// QuorumMemberError: the change is not possible.
type QuorumMemberError struct{ Reason string }

func (e *QuorumMemberError) Error() string { return e.Reason }

// AddQuorumMember adds node to the queue's members.
func (s *Server) AddQuorumMember(vhost, queue, node string) error {
	return &QuorumMemberError{"not implemented"}
}

// DeleteQuorumMember removes node from the queue's members.
func (s *Server) DeleteQuorumMember(vhost, queue, node string) error {
	return &QuorumMemberError{"not implemented"}
}

// GrowQuorumQueues adds node to every matching quorum queue.
func (s *Server) GrowQuorumQueues(node, vhostPattern, queuePattern, strategy string) ([]QuorumMemberResult, error) {
	return nil, &QuorumMemberError{"not implemented"}
}

// ShrinkQuorumQueues removes node from every quorum queue it is a member of.
func (s *Server) ShrinkQuorumQueues(node string) ([]QuorumMemberResult, error) {
	return nil, &QuorumMemberError{"not implemented"}
}
