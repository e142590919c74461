package cluster

import (
	"fmt"

	"github.com/warrenmq/warren/server/cluster/quorum"
)

// QuorumHub starts the node's transport for its quorum queues' Raft groups (one for all of
// them, on the cluster transport). The caller closes it before the node.
func (n *Node) QuorumHub() (*quorum.Hub, error) {
	h, err := quorum.NewHub(n.mux, n.log)
	if err != nil {
		return nil, fmt.Errorf("cluster: quorum queues' transport: %w", err)
	}
	return h, nil
}

// DataDir is the node's data dir (quorum queues keep their snapshots under it).
func (n *Node) DataDir() string { return n.cfg.DataDir }
