// Package cluster is a Warren node's membership in a cluster: the cluster transport
// (raftmux), and the Raft group every node belongs to for the cluster's metadata, on
// hashicorp/raft with its log in the node's store (store.RaftLog).
//
// A node is started with its name and the initial membership (configs.Cluster). On a fresh
// data dir every node bootstraps the same configuration, so the first election makes one
// cluster; a node restarted on existing data rejoins with the Raft state it has and never
// bootstraps again.
package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/configs"
	"github.com/warrenmq/warren/server/cluster/raftlog"
	"github.com/warrenmq/warren/server/cluster/raftmux"
	"github.com/warrenmq/warren/store"
)

// MetaGroup is the Raft group of the cluster's metadata; queue groups use their queue IDs.
const MetaGroup = ^uint64(0)

// Config is what a node needs to join its cluster.
type Config struct {
	Cluster configs.Cluster
	Secret  []byte
	// ServerTLS and ClientTLS, when set, wrap the cluster connections.
	ServerTLS, ClientTLS *tls.Config
	// DataDir holds the metadata group's snapshots (raft/meta).
	DataDir string
	Store   *store.Store
	Logger  zerolog.Logger
	// Timing overrides raft's defaults (tests); zero values keep them.
	HeartbeatTimeout, ElectionTimeout time.Duration
	// Applier is the model the metadata group drives (the broker); nil applies nothing.
	Applier Applier
	// SnapshotThreshold, SnapshotInterval and TrailingLogs override the metadata group's
	// snapshot policy (defaults: metaSnapshotThreshold, metaSnapshotInterval, metaTrailingLogs).
	SnapshotThreshold, TrailingLogs uint64
	SnapshotInterval                time.Duration
}

// The metadata group's snapshot policy: a snapshot after this many changes, checked this
// often, keeping this many entries behind it for followers that are a little behind (one
// further behind gets the snapshot).
const (
	metaSnapshotThreshold = 1024
	metaSnapshotInterval  = 30 * time.Second
	metaTrailingLogs      = 1024
)

// Node is a running cluster member.
type Node struct {
	cfg   Config
	log   zerolog.Logger
	ln    net.Listener
	mux   *raftmux.Mux
	trans *raft.NetworkTransport
	meta  *raft.Raft
	fsm   *metaFSM
	app   Applier
	// propLayer carries proposals forwarded to the leader (ProposeGroup).
	propLayer *raftmux.Layer
	// nudges asks the leader to tell the followers its commit index now (nudgeFollowers).
	nudges chan struct{}
	// started is closed once the metadata group runs (Start returned it): the Applier's
	// Attach runs before, and must not propose until then (WaitStarted).
	started chan struct{}
	closed  chan struct{}
	wg      sync.WaitGroup
	// beforeClose run first in Close, last added first (OnClose).
	closeMu     sync.Mutex
	beforeClose []func() error
	// peers are the followers this node, leading, fails to reach (peers.go).
	peers peerWatch
	// Rejoined says the node started on existing Raft state (it did not bootstrap).
	Rejoined bool
}

// Start listens for the other nodes and starts the metadata group.
func Start(cfg Config) (*Node, error) {
	c := cfg.Cluster
	self, ok := c.Self()
	if !ok {
		if !c.Joining() || c.Advertise == "" {
			return nil, fmt.Errorf("cluster: node %q is not among cluster-peers and has no cluster-advertise to join with", c.NodeName)
		}
		self = configs.Peer{Name: c.NodeName, Addr: c.Advertise}
	}
	listen := c.Listen
	if listen == "" {
		listen = configs.DefaultClusterListen
	}
	advertise := c.Advertise
	if advertise == "" {
		advertise = self.Addr
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("cluster: listen on %s (set cluster-listen to another address): %w", listen, err)
	}
	if cfg.ServerTLS != nil {
		ln = tls.NewListener(ln, cfg.ServerTLS)
	}
	log := cfg.Logger.With().Str("node", c.NodeName).Logger()
	app := cfg.Applier
	if app == nil {
		app = nopApplier{}
	}
	n := &Node{cfg: cfg, log: log, ln: ln, app: app, closed: make(chan struct{}), nudges: make(chan struct{}, 1),
		started: make(chan struct{})}
	muxCfg := raftmux.Config{Listener: ln, Advertise: advertise, Node: c.NodeName, Secret: cfg.Secret, Logger: log}
	if cfg.ClientTLS != nil {
		muxCfg.Dial = tlsDialer(cfg.ClientTLS)
	}
	n.mux = raftmux.New(muxCfg)
	if err := n.startMeta(self, advertise); err != nil {
		_ = n.mux.Close()
		close(n.closed) // what waits in WaitStarted gives up
		return nil, err
	}
	close(n.started)
	n.wg.Add(2)
	go n.serveProposals()
	go n.nudgeFollowers()
	log.Info().Str("listen", ln.Addr().String()).Str("advertise", advertise).Bool("rejoined", n.Rejoined).
		Int("peers", len(c.Peers)).Msg("cluster: node started")
	return n, nil
}

func (n *Node) startMeta(self configs.Peer, advertise string) error {
	logs, err := n.cfg.Store.RaftLog(MetaGroup)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	hlog := raftlog.New(n.log, hclog.Warn)
	dir := filepath.Join(n.cfg.DataDir, "raft", "meta")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hlog)
	if err != nil {
		return fmt.Errorf("cluster: snapshots in %s: %w", dir, err)
	}
	layer, err := n.mux.Layer(MetaGroup)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: layer, MaxPool: 3, Timeout: 10 * time.Second, Logger: hlog})
	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(self.Name)
	conf.Logger = hlog
	if n.cfg.HeartbeatTimeout > 0 {
		conf.HeartbeatTimeout = n.cfg.HeartbeatTimeout
		conf.LeaderLeaseTimeout = n.cfg.HeartbeatTimeout / 2
	}
	if n.cfg.ElectionTimeout > 0 {
		conf.ElectionTimeout = n.cfg.ElectionTimeout
	}
	conf.SnapshotThreshold, conf.SnapshotInterval, conf.TrailingLogs = metaSnapshotThreshold, metaSnapshotInterval, metaTrailingLogs
	if n.cfg.SnapshotThreshold > 0 {
		conf.SnapshotThreshold = n.cfg.SnapshotThreshold
	}
	if n.cfg.SnapshotInterval > 0 {
		conf.SnapshotInterval = n.cfg.SnapshotInterval
	}
	if n.cfg.TrailingLogs > 0 {
		conf.TrailingLogs = n.cfg.TrailingLogs
	}
	// The model on disk is newer than any snapshot: the FSM skips what it already applied
	// (meta.go), and a snapshot is only restored when the leader sends one.
	conf.NoSnapshotRestoreOnStart = true
	if n.propLayer, err = n.mux.Layer(ProposeGroup); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if n.fsm, err = newMetaFSM(n.app, logs, n.log); err != nil {
		return err
	}
	n.app.Attach(n)
	has, err := raft.HasExistingState(logs, logs, snaps)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	n.Rejoined = has
	if !has && n.cfg.Cluster.Joining() {
		n.log.Warn().Str("advertise", advertise).Msg("cluster: this node is not in cluster-peers: it waits for a member to add it " +
			"(warren ctl cluster join " + self.Name + "@" + advertise + ")")
	}
	if !has && !n.cfg.Cluster.Joining() {
		var servers []raft.Server
		for _, p := range n.cfg.Cluster.Peers {
			addr := p.Addr
			if p.Name == self.Name {
				addr = advertise
			}
			servers = append(servers, raft.Server{ID: raft.ServerID(p.Name), Address: raft.ServerAddress(addr)})
		}
		if err := raft.BootstrapCluster(conf, logs, logs, snaps, n.trans, raft.Configuration{Servers: servers}); err != nil {
			return fmt.Errorf("cluster: bootstrap: %w", err)
		}
	}
	r, err := raft.NewRaft(conf, n.fsm, logs, logs, snaps, n.trans)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	n.meta = r
	n.watchPeers()
	return nil
}

// Close leaves the metadata group (without removing this node from the membership) and closes
// the cluster connections.
func (n *Node) Close() error {
	n.closeMu.Lock()
	fns := n.beforeClose
	n.beforeClose = nil
	n.closeMu.Unlock()
	var errs []error
	for i := len(fns) - 1; i >= 0; i-- {
		errs = append(errs, fns[i]())
	}
	close(n.closed)
	err := errors.Join(append(errs, n.meta.Shutdown().Error())...)
	_ = n.propLayer.Close()
	err = errors.Join(err, n.trans.Close(), n.mux.Close())
	n.wg.Wait()
	return err
}

// OnClose has fn run at the start of Close, while the cluster transport still runs (e.g. to
// stop the quorum queues' groups, whose transport is the node's).
func (n *Node) OnClose(fn func() error) {
	n.closeMu.Lock()
	n.beforeClose = append(n.beforeClose, fn)
	n.closeMu.Unlock()
}

// Name is this node's name.
// WaitStarted waits until the node's metadata group runs (changes can be proposed); false
// if the node failed to start or was closed.
func (n *Node) WaitStarted() bool {
	select {
	case <-n.started:
		return true
	case <-n.closed:
		return false
	}
}

// Closed says whether the node has been closed.
func (n *Node) Closed() bool {
	select {
	case <-n.closed:
		return true
	default:
		return false
	}
}

func (n *Node) Name() string { return n.cfg.Cluster.NodeName }

// Members are the names of the cluster's voting nodes now (joined nodes included, nodes
// that left not), in the order of the metadata group's configuration; the initial membership
// (cluster-peers) while that cannot be read.
func (n *Node) Members() []string {
	if f := n.meta.GetConfiguration(); f.Error() == nil {
		var out []string
		for _, s := range f.Configuration().Servers {
			if s.Suffrage == raft.Voter {
				out = append(out, string(s.ID))
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	out := make([]string, 0, len(n.cfg.Cluster.Peers))
	for _, p := range n.cfg.Cluster.Peers {
		out = append(out, p.Name)
	}
	return out
}

// QueueRecord returns where the replicated queue vhost/name lives.
func (n *Node) QueueRecord(vhost, name string) (QueueRecord, bool) { return n.fsm.record(vhost, name) }

// QueueRecords returns every replicated queue's record.
func (n *Node) QueueRecords() []QueueRecord { return n.fsm.records() }

// Snapshot takes a snapshot of the metadata group now (tests, operators).
func (n *Node) Snapshot() error {
	if err := n.meta.Snapshot().Error(); err != nil {
		return fmt.Errorf("cluster: metadata snapshot: %w", err)
	}
	return nil
}

// Member is one node of the membership as the metadata group sees it.
type Member struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Voter   bool   `json:"voter"`
	Leader  bool   `json:"leader"`
}

// Status is the node's view of the cluster.
type Status struct {
	Node         string   `json:"node"`
	State        string   `json:"state"` // Leader, Follower, Candidate, Shutdown
	Leader       string   `json:"leader"`
	Term         uint64   `json:"term"`
	LastIndex    uint64   `json:"last_index"`
	CommitIndex  uint64   `json:"commit_index"`
	AppliedIndex uint64   `json:"applied_index"`
	Members      []Member `json:"members"`
	// SnapshotIndex is the index of the last snapshot this node took or received.
	SnapshotIndex uint64 `json:"snapshot_index"`
	// Rejoined: the node started on Raft state it had (it did not bootstrap).
	Rejoined bool `json:"rejoined"`
}

// Status reports the metadata group's state on this node.
func (n *Node) Status() Status {
	st := n.meta.Stats()
	_, leader := n.meta.LeaderWithID()
	s := Status{Node: n.cfg.Cluster.NodeName, State: n.meta.State().String(), Leader: string(leader),
		LastIndex: n.meta.LastIndex(), CommitIndex: n.meta.CommitIndex(), AppliedIndex: n.meta.AppliedIndex(),
		Rejoined: n.Rejoined}
	_, _ = fmt.Sscan(st["term"], &s.Term)
	_, _ = fmt.Sscan(st["last_snapshot_index"], &s.SnapshotIndex)
	if f := n.meta.GetConfiguration(); f.Error() == nil {
		for _, srv := range f.Configuration().Servers {
			s.Members = append(s.Members, Member{Name: string(srv.ID), Address: string(srv.Address),
				Voter: srv.Suffrage == raft.Voter, Leader: srv.ID == leader})
		}
	}
	return s
}
