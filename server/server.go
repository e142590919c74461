// Package server is Warren's AMQP 0-9-1 protocol layer: listener, handshake, connections,
// channels, content assembly, method handlers, publisher confirms, delivery to consumers,
// access control and resource alarms. The broker model it drives (vhosts, exchanges, queues,
// bindings, policies, recovery) is package server/vhost; messages live in server/queue.
//
// Ownership: each connection has a reader goroutine that owns the connection and channel
// state and dispatches methods, and a writer goroutine that flushes the output buffer and
// answers publisher confirms. Queues deliver into a channel's output under the channel's
// lock. Lock order, never taken the other way: vhost.Vhost's locks → queue lock → channel.mu →
// conn.wmu.
package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/configs"
	"github.com/warrenmq/warren/server/cluster"
	"github.com/warrenmq/warren/server/queue"
	"github.com/warrenmq/warren/server/vhost"
	"github.com/warrenmq/warren/store"
)

// Version is the broker version sent in connection.start.
const Version = "0.1.0"

// Defaults for Config fields left zero.
const (
	DefaultHeartbeat           = 60 * time.Second
	DefaultFrameMax            = 131072
	DefaultChannelMax          = 2047
	DefaultMaxMessageSize      = 16 << 20 // RabbitMQ 4.x's default max_message_size
	DefaultHandshakeTimeout    = 10 * time.Second
	DefaultWriteTimeout        = 30 * time.Second
	DefaultConsumerTimeout     = 30 * time.Minute // RabbitMQ 3.10's consumer_timeout, 1800000 ms
	DefaultWriteBacklog        = 1 << 20
	DefaultQueueMemoryMessages = 8192
	DefaultQueueMemoryBytes    = 32 << 20
)

// Config holds the broker settings that server.New needs. Zero fields take the defaults above.
type Config struct {
	// Logger receives structured logs. The zero value discards them.
	Logger zerolog.Logger
	// Heartbeat is the heartbeat interval offered in connection.tune (default 60s; negative
	// offers 0, which lets the client disable heartbeats).
	Heartbeat time.Duration
	// FrameMax is the largest frame offered in connection.tune (default 131072).
	FrameMax uint32
	// ChannelMax is the highest channel number offered in connection.tune (default 2047).
	ChannelMax uint16
	// MaxMessageSize is the largest message body accepted (default 16 MiB); larger ones get
	// 406 PRECONDITION_FAILED. At most store.MaxBody (just under 63 MiB, what one store
	// record holds); a larger value is lowered to it.
	MaxMessageSize int
	// HandshakeTimeout bounds the time from TCP accept to connection.open (default 10s).
	HandshakeTimeout time.Duration
	// WriteTimeout is how long a write to a client's socket may block (default 30s): a peer
	// that reads nothing for that long while output waits for it is disconnected. Writes
	// move the deadline at most once per half timeout, so the peer gets between half and all
	// of it.
	WriteTimeout time.Duration
	// ConsumerTimeout closes a channel with 406 when one of its deliveries stays
	// unacknowledged longer, as RabbitMQ's consumer_timeout (default 30 minutes; negative
	// disables it). A queue's x-consumer-timeout or consumer-timeout policy overrides it.
	ConsumerTimeout time.Duration
	// Clock is the time the acknowledgement timeouts read and arm timers on (default the wall
	// clock); tests may drive their own.
	Clock queue.Clock
	// WriteBacklog is how many bytes may wait in a connection's output before its consumers
	// stop receiving deliveries until the socket drains (default 1 MiB).
	WriteBacklog int
	// Access says who may log in and what they may do; nil is DefaultAccess (guest/guest from
	// loopback, every permission on "/"). SetAccess replaces it while running.
	Access *Access
	// LoopbackUsers may log in only from loopback addresses (RabbitMQ's loopback_users); nil
	// is ["guest"], empty lets everyone connect from anywhere.
	LoopbackUsers []string
	// MaxConnections refuses connections beyond this many (0: no limit).
	MaxConnections int
	// Store persists durable definitions and messages, and holds queue backlogs that do not fit
	// in memory. Nil keeps everything in memory. Call Recover before Serve when it is set.
	Store *store.Store
	// QueueMemory bounds each queue's ready messages held in memory when there is a store
	// (default 8192 messages and 32 MiB); the rest stays on disk until consumers get to it.
	QueueMemory QueueMemory
	// MemoryLimit is the memory alarm's threshold in bytes (RabbitMQ's high watermark): above
	// it publishers are blocked; from half of it queues page their messages out. 0 disables
	// both. SetResourceLimits changes it while running.
	MemoryLimit int64
	// DiskFreeLimit is the disk alarm's threshold: while the data dir's disk has less free
	// space, publishers are blocked. Negative or zero disables it (it needs a Store).
	DiskFreeLimit int64
	// DisableFlowControl turns publisher flow control off: publishers are never paced by the
	// consumers of congested queues, even when the CPUs are saturated (see flow.go).
	DisableFlowControl bool
	// Product is the product name and version presented in connection.start (default
	// "Warren" and Version).
	Product Product
	// OnQuorumQueue, in a cluster, is told about every quorum queue record this node applies
	// (created, found at start, deleted), with the queue's members (clustermeta.go).
	OnQuorumQueue func(QuorumQueueChange)
}

// QueueMemory is the window of ready messages a queue keeps in memory when there is a store:
// whichever bound is reached first sends the rest of its backlog to disk. Zero fields take
// the defaults (DefaultQueueMemoryMessages, DefaultQueueMemoryBytes).
type QueueMemory struct {
	Messages int   // ready messages
	Bytes    int64 // bytes of their bodies
}

// window is the queue package's form of m.
func (m QueueMemory) window() queue.Window {
	return queue.Window{Count: m.Messages, Bytes: int(min(m.Bytes, math.MaxInt))}
}

func (c *Config) setDefaults() {
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.Heartbeat < 0 {
		c.Heartbeat = 0
	}
	if c.FrameMax == 0 {
		c.FrameMax = DefaultFrameMax
	}
	if c.ChannelMax == 0 {
		c.ChannelMax = DefaultChannelMax
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	c.MaxMessageSize = min(c.MaxMessageSize, store.MaxBody)
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.ConsumerTimeout == 0 {
		c.ConsumerTimeout = DefaultConsumerTimeout
	}
	if c.Clock == nil {
		c.Clock = queue.RealClock{}
	}
	if c.WriteBacklog == 0 {
		c.WriteBacklog = DefaultWriteBacklog
	}
	if c.QueueMemory.Messages == 0 {
		c.QueueMemory.Messages = DefaultQueueMemoryMessages
	}
	if c.QueueMemory.Bytes == 0 {
		c.QueueMemory.Bytes = DefaultQueueMemoryBytes
	}
	if c.LoopbackUsers == nil {
		c.LoopbackUsers = []string{"guest"}
	}
	if c.Access == nil {
		c.Access = DefaultAccess(c.LoopbackUsers)
	}
}

// Server is a broker.
type Server struct {
	cfg    Config
	log    zerolog.Logger
	access accessHolder

	vhosts *vhost.Registry
	// replies finds the channels of direct reply-to names (replyto.go).
	replies replyRegistry

	// applyMu serialises ApplyDefinitions; managed is what it last applied.
	applyMu sync.Mutex
	managed vhost.Managed
	// api is what the management API made (apilayer.go), also guarded by applyMu.
	api *apiLayer
	// loadDefs reads the definitions files as they are now (DefinitionsDrift); guarded by applyMu.
	loadDefs func() (*configs.Definitions, error)

	connIDs  atomic.Uint64
	counters counters // for metrics (stats.go)
	flow     *flowControl
	alarms   *alarms
	res      *resources

	// overLimitLog summarises refusals over MaxConnections, handshakeLog failed handshakes
	// per source address.
	overLimitLog *summaryLog
	handshakeLog *summaryLog
	// loginLimit slows failed logins per source address; loginLog summarises them.
	loginLimit *loginLimiter
	loginLog   *summaryLog
	// ackTimeoutLog summarises acknowledgement timeouts per queue (consumertimeout.go).
	ackTimeoutLog *summaryLog
	// noQuorumLog summarises changes refused for want of a cluster majority (clustermeta.go).
	noQuorumLog *summaryLog

	// meta is the cluster node the replicated model's changes go through; nil on a single
	// node. Set by Attach before Serve, never changed after. proposeTimeout bounds a change's
	// wait for a leader (proposeTimeout the constant; tests shorten it).
	meta *cluster.Node
	// quorum runs this node's members of its quorum queues' Raft groups (clusterquorum.go); nil
	// outside a cluster or without a store.
	quorum         *quorumQueues
	proposeTimeout time.Duration
	// downAfter: a member the metadata leader has not reached for this long is down
	// (nodeDownAfter the constant; tests shorten it): its non-durable queues are deleted
	// (clustermeta_down.go).
	downAfter time.Duration
	// fwd forwards traffic to the queues other nodes hold (forward_publish.go); nil on a
	// single node. Set by StartForwarding before Serve, never changed after.
	fwd *forwarding
	// nodeReport is this node's report of itself to the other nodes (forward_node.go).
	nodeReport atomic.Pointer[func() []byte]

	mu        sync.Mutex
	conns     map[*conn]struct{}    // open or opening, counted against MaxConnections
	refusing  map[net.Conn]struct{} // over-limit sockets being refused (limit.go)
	listeners map[net.Listener]struct{}
	closing   bool
	wg        sync.WaitGroup // one per connection
}

// New returns a broker configured by cfg, with the vhost "/" and its predeclared exchanges.
func New(cfg Config) *Server {
	cfg.setDefaults()
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		conns:     make(map[*conn]struct{}),
		refusing:  make(map[net.Conn]struct{}),
		listeners: make(map[net.Listener]struct{}),
		api:       newAPILayer(),

		proposeTimeout: proposeTimeout,
		downAfter:      nodeDownAfter,
	}
	s.flow = newFlowControl(!cfg.DisableFlowControl, s.log)
	s.alarms = newAlarms(s.log)
	s.res = newResources(s)
	s.overLimitLog = newSummaryLog(s.log, "connections refused: connection limit reached", "reason", floodSummaryEvery, 1)
	s.handshakeLog = newSummaryLog(s.log, "handshakes failed", "source", floodSummaryEvery, floodSummaryKeys)
	s.loginLimit = newLoginLimiter(loginFailureInterval, loginLimitSources)
	s.loginLog = newSummaryLog(s.log, "logins refused", "source", floodSummaryEvery, floodSummaryKeys)
	s.ackTimeoutLog = newSummaryLog(s.log, "acknowledgement timeouts", "queue", floodSummaryEvery, floodSummaryKeys)
	s.noQuorumLog = newSummaryLog(s.log, "changes refused: the cluster has no majority", "op", floodSummaryEvery, floodSummaryKeys)
	s.access.p.Store(cfg.Access)
	s.vhosts = vhost.NewRegistry(s.log, cfg.Store, cfg.QueueMemory.window())
	return s
}

// SetAccess replaces who may log in and what they may do. Connections that are open keep
// their login; every later operation is checked against a.
func (s *Server) SetAccess(a *Access) {
	s.access.p.Store(a)
}

// SetResourceLimits changes the memory limit and the disk free limit (see Config) while the
// broker runs, as rabbitmqctl set_vm_memory_high_watermark and set_disk_free_limit do.
func (s *Server) SetResourceLimits(memory, diskFree int64) {
	s.res.setLimits(memory, diskFree)
	if s.cfg.Store != nil {
		s.cfg.Store.SetDiskReserve(StoreReserve(diskFree))
	}
}

// StoreReserve is the free space below which the store itself refuses new messages (the
// publisher gets basic.nack and the message is not enqueued), given the disk alarm's limit:
// half of it, so the alarm blocks publishers first and the store only refuses what was already
// on its way when the space went that fast (another process filling the disk). It is at
// least minStoreReserve, so a disk alarm set to 0 still leaves Badger room to write; a
// negative limit turns both off.
func StoreReserve(diskFreeLimit int64) int64 {
	if diskFreeLimit < 0 {
		return -1
	}
	return max(diskFreeLimit/2, minStoreReserve)
}

// minStoreReserve is the least free space the store keeps (see StoreReserve).
const minStoreReserve = 8 << 20

// setQueueWindow gives every queue, and every queue declared from now on, window w, and
// appends to waiting the queues that could not page everything out yet (see queue.Trim).
func (s *Server) setQueueWindow(w queue.Window, waiting []*queue.Queue) []*queue.Queue {
	vhosts := s.vhostList()
	for _, v := range vhosts {
		for _, q := range v.SetWindow(w) {
			if q.SetWindow(w) {
				waiting = append(waiting, q)
			}
		}
	}
	return waiting
}

// vhostList returns the vhosts there are now.
func (s *Server) vhostList() []*vhost.Vhost { return s.vhosts.List() }

// vhost returns the named vhost, nil if there is none.
func (s *Server) vhost(name string) *vhost.Vhost { return s.vhosts.Get(name) }

// vhostFor returns the named vhost, creating it if needed.
func (s *Server) vhostFor(name string) *vhost.Vhost { return s.vhosts.Ensure(name) }

// Recover loads durable exchanges, queues and bindings, and the objects made through the
// management API, from the store and indexes each queue's
// messages without reading their bodies: bodies are read back as consumers drain. Call it once,
// before Serve.
func (s *Server) Recover() error {
	if err := s.vhosts.Recover(); err != nil {
		return err
	}
	return s.recoverAPILayer()
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("server: closed")

// Serve accepts AMQP connections on ln until ctx is cancelled or Shutdown is called. It always
// returns a non-nil error: ErrServerClosed after a shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	s.flow.start()
	s.res.start()

	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Shutdown(sctx)
	})
	defer stop()

	proto := listenerProtocol(ln)
	s.log.Info().Str("addr", ln.Addr().String()).Str("protocol", proto).Bool("tls", proto == "amqps").Msg("listening for AMQP 0-9-1")
	backoff := acceptBackoff{log: s.log, addr: ln.Addr().String()}
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return ErrServerClosed
			}
			if retryableAccept(err) {
				// Out of descriptors (EMFILE, ENFILE) and the like: the connection waits in
				// the kernel's queue until a descriptor frees up.
				time.Sleep(backoff.failed(err, time.Now()))
				continue
			}
			return fmt.Errorf("accept on %s: %w", ln.Addr(), err)
		}
		backoff.succeeded(time.Now())
		s.startConn(nc)
	}
}

func (s *Server) startConn(nc net.Conn) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		_ = nc.Close()
		return
	}
	if !s.admit(nc) {
		s.mu.Unlock()
		return
	}
	c := newConn(s, nc)
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		c.serve()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
}

// Shutdown stops accepting, closes every connection with connection.close 320
// CONNECTION_FORCED and waits for them to finish or for ctx to end.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for ln := range s.listeners {
		_ = ln.Close()
		delete(s.listeners, ln)
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	for nc := range s.refusing {
		_ = nc.Close()
	}
	s.mu.Unlock()
	s.flow.close()
	s.res.close()
	s.loginLimit.close()
	s.overLimitLog.close()
	s.handshakeLog.close()
	s.loginLog.close()
	s.ackTimeoutLog.close()
	s.noQuorumLog.close()

	// Held delayed messages stay in the store; no timer routes one into a closing broker.
	s.vhosts.StopDelayed()
	for _, c := range conns {
		c.forceClose("broker forced connection closure with reason 'shutdown'")
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.log.Info().Int("connections", len(conns)).Msg("shut down")
		return nil
	case <-ctx.Done():
		for _, c := range conns {
			_ = c.nc.Close()
		}
		<-done
		return fmt.Errorf("shutdown: %w", ctx.Err())
	}
}
