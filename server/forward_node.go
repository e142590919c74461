package server

import (
	"context"
	"errors"
)

// Node reports. In a cluster, a node's management API lists every member in /api/nodes: this
// node as it sees itself, the others as they report themselves when asked over the cluster
// transport (forward.Local.Node), so each node's figures (memory, descriptors, disk) are its
// own.

// SetNodeReport makes fn this node's report of itself to the other nodes: the management API
// sets its /api/nodes object for this node. Without one the report is an empty object (the
// others list the node as running, without figures).
func (s *Server) SetNodeReport(fn func() []byte) { s.nodeReport.Store(&fn) }

// Node implements forward.Local.
func (l *forwardLocal) Node() ([]byte, error) {
	if fn := l.s.nodeReport.Load(); fn != nil {
		return (*fn)(), nil
	}
	return []byte("{}"), nil
}

// NodeReport asks the cluster node name for its report (SetNodeReport), waiting at most as
// long as ctx allows: an error when it cannot be reached or does not answer in time.
func (s *Server) NodeReport(ctx context.Context, name string) ([]byte, error) {
	if s.fwd == nil {
		return nil, errors.New("server: no cluster to ask")
	}
	addr, err := s.fwd.addr(name)
	if err != nil {
		return nil, err
	}
	return s.fwd.client.Node(ctx, addr)
}
