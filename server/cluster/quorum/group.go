package quorum

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/server/cluster/raftlog"
	"github.com/warrenmq/warren/server/queue"
	"github.com/warrenmq/warren/store"
)

// Member is one replica of a quorum queue: a node's name and cluster address.
type Member struct {
	Name, Address string
}

// Timing is a group's Raft timing. Zero fields take the defaults (DefaultTiming).
type Timing struct {
	// HeartbeatTimeout: a follower that hears nothing from the leader for this long (to
	// twice it) starts an election; the leader sends a heartbeat every tenth of it.
	HeartbeatTimeout time.Duration
	// ElectionTimeout: a candidate without a result for this long starts another election.
	ElectionTimeout time.Duration
	// LeaderLeaseTimeout: a leader that has not heard from a majority for this long steps
	// down, failing its uncommitted commands. At most HeartbeatTimeout.
	LeaderLeaseTimeout time.Duration
	// CommitTimeout: an idle leader sends an empty append this often; it carries the commit
	// index, so followers apply the last commands within it.
	CommitTimeout time.Duration
	// CommitBound: a command not committed (on a majority, and applied locally) within it
	// fails: the publisher is nacked.
	CommitBound time.Duration
	// SnapshotInterval and SnapshotThreshold: every interval (randomized to twice it) a
	// member snapshots when its log has grown by the threshold since the last snapshot;
	// TrailingLogs entries stay behind a snapshot, for followers a little behind.
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	TrailingLogs      uint64
}

// DefaultTiming is the timing of a quorum queue's group, chosen for hundreds to thousands of
// groups per node (docs/cluster.md, "Quorum queues").
var DefaultTiming = Timing{
	HeartbeatTimeout:   2 * time.Second,
	ElectionTimeout:    2 * time.Second,
	LeaderLeaseTimeout: time.Second,
	CommitTimeout:      time.Second,
	CommitBound:        5 * time.Second,
	SnapshotInterval:   time.Minute,
	SnapshotThreshold:  4096,
	TrailingLogs:       2048,
}

func (t Timing) withDefaults() Timing {
	d := DefaultTiming
	set := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&t.HeartbeatTimeout, d.HeartbeatTimeout)
	set(&t.ElectionTimeout, max(d.ElectionTimeout, t.HeartbeatTimeout)) // raft wants it >= the heartbeat timeout
	set(&t.LeaderLeaseTimeout, min(d.LeaderLeaseTimeout, t.HeartbeatTimeout))
	set(&t.CommitTimeout, d.CommitTimeout)
	set(&t.CommitBound, d.CommitBound)
	set(&t.SnapshotInterval, d.SnapshotInterval)
	if t.SnapshotThreshold == 0 {
		t.SnapshotThreshold = d.SnapshotThreshold
	}
	if t.TrailingLogs == 0 {
		t.TrailingLogs = d.TrailingLogs
	}
	return t
}

// Config starts one quorum queue's group on one member node.
type Config struct {
	// ID is the queue's store ID, which is also its Raft group's ID on the cluster transport.
	ID uint64
	// Name is the queue's name, for the core and the logs.
	Name string
	// Self is this node's name; Members are every replica, this node included, the same list
	// on every member.
	Self    string
	Members []Member
	// Join: a member without Raft state for the group does not bootstrap Members; it waits
	// for the group's leader to add it (AddMember) and catches up from the leader. Set once the
	// members changed since the declaration, when bootstrapping the declared ones would start a
	// second history of the group.
	Join bool
	// Hub is the node's transport for its quorum queues (NewHub).
	Hub   *Hub
	Store *store.Store
	// DataDir holds the group's snapshots, in DataDir/raft/q<ID>.
	DataDir string
	// Options give the leader's core its behaviours (features, dead-lettering, window). The
	// group sets Journal, Durable, Features.Quorum and a single priority level.
	Options func() queue.Options
	// OnLeader receives the core when this node becomes the queue's leader, rebuilt from
	// the committed messages. Called from the group's goroutine.
	OnLeader func(core *queue.Queue)
	// OnFollower is told that the core this node led is gone (leadership lost, group
	// stopped): its consumers (already detached from it) must go to the new leader, and its
	// pending publishes have failed. Called from the group's goroutine.
	OnFollower func(core *queue.Queue, consumers []queue.Consumer)
	Timing     Timing
	Logger     zerolog.Logger
}

// logCache is the number of log entries a group keeps in memory.
const logCache = 16

// Group is one quorum queue's Raft group on one member node.
type Group struct {
	cfg     Config
	timing  Timing
	log     zerolog.Logger
	fsm     *fsm
	r       *raft.Raft
	trans   *groupTransport
	snapDir string

	mu   sync.Mutex
	core *queue.Queue
	j    *journal

	failed chan *journal
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
}

// Start starts this node's member of the queue's group: a fresh queue's group is
// bootstrapped with Members (every member bootstraps the same configuration) unless Join; a
// member with Raft state for it rejoins with that state.
func Start(cfg Config) (*Group, error) {
	if cfg.Options == nil {
		cfg.Options = func() queue.Options { return queue.Options{Features: queue.NoFeatures} }
	}
	g := &Group{cfg: cfg, timing: cfg.Timing.withDefaults(), failed: make(chan *journal, 1),
		stop: make(chan struct{}), done: make(chan struct{}),
		snapDir: snapshotDir(cfg.DataDir, cfg.ID)}
	g.log = cfg.Logger.With().Uint64("queue_id", cfg.ID).Str("queue", cfg.Name).Logger()
	g.fsm = newFSM(cfg.Store, cfg.ID, g.log)
	bootstrapped, err := g.startRaft()
	if err != nil {
		return nil, fmt.Errorf("quorum queue %q: %w", cfg.Name, err)
	}
	go g.run()
	if bootstrapped && cfg.Members[0].Name == cfg.Self {
		go g.campaign()
	}
	return g, nil
}

// startRaft starts the member's raft; it reports whether it bootstrapped a fresh group.
func (g *Group) startRaft() (bool, error) {
	cfg := g.cfg
	var self *Member
	for i := range cfg.Members {
		if cfg.Members[i].Name == cfg.Self {
			self = &cfg.Members[i]
		}
	}
	if self == nil {
		return false, fmt.Errorf("node %q is not among the members", cfg.Self)
	}
	logs, err := cfg.Store.RaftLog(cfg.ID)
	if err != nil {
		return false, err
	}
	hlog := raftlog.New(cfg.Hub.raftLog.With().Uint64("queue_id", cfg.ID).Logger(), hclog.Error)
	if err := os.MkdirAll(g.snapDir, 0o755); err != nil {
		return false, fmt.Errorf("snapshot directory: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(g.snapDir, 1, hlog)
	if err != nil {
		return false, fmt.Errorf("snapshots in %s: %w", g.snapDir, err)
	}
	trans, err := cfg.Hub.transport(cfg.ID)
	if err != nil {
		return false, err
	}
	g.trans = trans

	t := g.timing
	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(cfg.Self)
	conf.Logger = hlog
	conf.HeartbeatTimeout, conf.ElectionTimeout = t.HeartbeatTimeout, t.ElectionTimeout
	conf.LeaderLeaseTimeout, conf.CommitTimeout = t.LeaderLeaseTimeout, t.CommitTimeout
	conf.SnapshotInterval, conf.SnapshotThreshold, conf.TrailingLogs = t.SnapshotInterval, t.SnapshotThreshold, t.TrailingLogs
	has, err := raft.HasExistingState(logs, logs, snaps)
	if err != nil {
		_ = trans.Close()
		return false, err
	}
	if !has && !cfg.Join {
		var servers []raft.Server
		for _, m := range cfg.Members {
			servers = append(servers, raft.Server{ID: raft.ServerID(m.Name), Address: raft.ServerAddress(m.Address)})
		}
		if err := raft.BootstrapCluster(conf, logs, logs, snaps, g.trans, raft.Configuration{Servers: servers}); err != nil {
			_ = trans.Close()
			return false, fmt.Errorf("bootstrap: %w", err)
		}
	}
	// A small cache: replication reads the newest entries, and every idle group keeps its
	// last few entries' data in memory.
	cached, err := raft.NewLogCache(logCache, logs)
	if err != nil {
		_ = trans.Close()
		return false, err
	}
	r, err := raft.NewRaft(conf, g.fsm, cached, logs, snaps, g.trans)
	if err != nil {
		_ = trans.Close()
		return false, err
	}
	g.r = r
	return !has && !cfg.Join, nil
}

// run follows the node's leadership of the group: a core while it leads, none otherwise.
func (g *Group) run() {
	defer close(g.done)
	leaderCh := g.r.LeaderCh()
	leader := false
	var retry <-chan time.Time
	for {
		select {
		case <-g.stop:
			g.dropCore()
			return
		case leader = <-leaderCh:
		case j := <-g.failed:
			g.mu.Lock()
			current := g.j == j
			g.mu.Unlock()
			if current {
				g.dropCore()
			}
		case <-retry:
		}
		retry = nil
		if !leader {
			g.dropCore()
			continue
		}
		g.mu.Lock()
		has := g.core != nil
		g.mu.Unlock()
		if !has {
			if err := g.lead(); err != nil {
				g.log.Warn().Err(err).Msg("quorum queue: taking over as leader failed; retrying")
				retry = time.After(g.timing.HeartbeatTimeout / 2)
			}
		}
	}
}

// lead rebuilds the core from the committed messages once this node has applied every
// command of the log, and hands it over.
func (g *Group) lead() error {
	if err := g.r.Barrier(g.timing.CommitBound).Error(); err != nil {
		return fmt.Errorf("waiting for the log to be applied: %w", err)
	}
	st := g.cfg.Store
	if err := st.Flush(); err != nil {
		return fmt.Errorf("flushing the store: %w", err)
	}
	ix, err := st.IndexQueue(g.cfg.ID)
	if err != nil {
		return err
	}
	g.trans.reset()
	j := newJournal(g, ix.LastSeq)
	opts := g.cfg.Options()
	if opts.Features == (queue.Features{}) {
		opts.Features = queue.NoFeatures // the zero value is "none" to the core only as a whole
	}
	opts.Journal, opts.LevelJournal, opts.Durable = j, nil, true
	opts.Features.Quorum, opts.Features.MaxPriority = true, 0
	core := queue.Recover(g.cfg.Name, opts, []queue.Restored{{Count: int(ix.Count), Bytes: int(ix.Bytes), First: ix.FirstSeq, Last: ix.LastSeq}})
	g.mu.Lock()
	g.core, g.j = core, j
	g.mu.Unlock()
	g.log.Info().Int64("messages", ix.Count).Msg("quorum queue: this node leads the queue")
	if g.cfg.OnLeader != nil {
		g.cfg.OnLeader(core)
	}
	return nil
}

// dropCore ends this node's leadership of the core, if it has one: pending commands fail,
// the core stops delivering, and OnFollower gets its consumers.
func (g *Group) dropCore() {
	g.mu.Lock()
	core, j := g.core, g.j
	g.core, g.j = nil, nil
	g.mu.Unlock()
	if core == nil {
		return
	}
	j.close()
	consumers, _ := core.Delete()
	g.log.Info().Int("consumers", len(consumers)).Msg("quorum queue: this node no longer leads the queue")
	if g.cfg.OnFollower != nil {
		g.cfg.OnFollower(core, consumers)
	}
}

// journalFailed is told by a journal whose command could not be committed: its core may
// hold messages that are not committed, so it is dropped (and rebuilt if the node still
// leads).
func (g *Group) journalFailed(j *journal, err error) {
	g.log.Warn().Err(err).Msg("quorum queue: a command was not committed; the leader's core is rebuilt")
	select {
	case g.failed <- j:
	default:
	}
}

// Core is the queue's core while this node leads it, or nil.
func (g *Group) Core() *queue.Queue {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.core
}

// Committed is the number of committed messages and the bytes of their bodies as this
// member has applied them: what declare-ok and listings show on any node.
func (g *Group) Committed() (messages int, bytes int64) { return g.fsm.committed() }

// Close stops this node's member of the group and keeps its state (the node stops; the
// member rejoins when it starts again).
func (g *Group) Close() error {
	var err error
	g.once.Do(func() {
		close(g.stop)
		// The transport first (RPCs to the group are refused from now on, rather than left
		// unanswered by a stopped raft), then raft: a takeover waiting on its barrier gives
		// up at once.
		err = g.trans.Close()
		err = errors.Join(err, g.r.Shutdown().Error())
		<-g.done
	})
	if err != nil {
		return fmt.Errorf("quorum queue %q: stopping: %w", g.cfg.Name, err)
	}
	return nil
}

// Delete stops the member and deletes what this node holds of the queue: its Raft log and
// stable state, its snapshots and its records. Every member deletes its own when the queue
// is deleted.
func (g *Group) Delete() error {
	err := g.Close()
	st := g.cfg.Store
	err = errors.Join(err, st.DropRaftGroup(g.cfg.ID), st.DeleteQueueRecords(g.cfg.ID), os.RemoveAll(g.snapDir))
	if err != nil {
		return fmt.Errorf("quorum queue %q: deleting: %w", g.cfg.Name, err)
	}
	return nil
}
