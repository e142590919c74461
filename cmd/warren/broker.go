package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/configs"
	"github.com/warrenmq/warren/server"
	"github.com/warrenmq/warren/server/cluster/forward"
	"github.com/warrenmq/warren/server/metrics"
	"github.com/warrenmq/warren/server/mgmt"
	"github.com/warrenmq/warren/store"
)

// brokerFlags defines the broker's flags on fs over the defaults and returns a function that
// applies the flags the user set to a loaded configuration.
func brokerFlags(fs *flag.FlagSet) (configPath, debugListen *string, apply func(*configs.Broker) error) {
	def := configs.DefaultBroker()
	configPath = fs.String("config", "", "broker configuration file (YAML); flags override it")
	listen := fs.String("listen", def.Listeners[0].Address, "TCP address for AMQP 0-9-1 clients (replaces the file's amqp listeners)")
	dataDir := fs.String("data-dir", def.DataDir, "directory of the Badger store: durable definitions, persistent messages, paged-out backlogs")
	logLevel := fs.String("log-level", def.Log.Level, "log level: trace, debug, info, warn, error")
	logFormat := fs.String("log-format", def.Log.Format, "log format: auto (console on a terminal, JSON otherwise), json, console")
	windowMsgs := fs.Int("queue-memory-messages", def.QueueMemory.Messages, "ready messages each queue keeps in memory; the rest waits on disk")
	windowBytes := fs.String("queue-memory-bytes", def.QueueMemory.Bytes.String(), "bytes of ready message bodies each queue keeps in memory")
	diskFree := fs.String("disk-free-limit", def.DiskFreeLimit.String(), "free space to keep on the data dir's disk: below it publishers are blocked (-1 disables)")
	memLimit := fs.String("memory-limit", def.MemoryLimit.String(), "memory alarm: above it publishers are blocked; a size (2GiB) or a fraction of the machine's or cgroup's memory (0.4)")
	frameMax := fs.String("frame-max", def.Limits.FrameMax.String(), "largest frame offered to clients")
	channelMax := fs.Int("channel-max", def.Limits.ChannelMax, "highest channel number offered to clients")
	maxMsg := fs.String("max-message-size", def.Limits.MaxMessageSize.String(), "largest message body accepted")
	maxConns := fs.Int("max-connections", def.Limits.MaxConnections, "connections accepted at once (0: no limit)")
	heartbeat := fs.String("heartbeat", def.Heartbeat.String(), "heartbeat interval offered to clients (0 lets them disable heartbeats)")
	handshakeTimeout := fs.String("handshake-timeout", def.HandshakeTimeout.String(), "time a new connection has from accept to connection.open")
	writeTimeout := fs.String("write-timeout", def.WriteTimeout.String(), "how long a write to a client may block: a client that reads nothing for this long is disconnected")
	consumerTimeout := fs.String("consumer-timeout", def.ConsumerTimeout.String(), "a delivery left unacknowledged longer closes its channel with 406, as RabbitMQ's consumer_timeout (0 disables it)")
	flowControl := fs.Bool("flow-control", def.FlowControl, "pace publishers by the consumers of queues that spill to disk while the CPUs are saturated")
	productName := fs.String("product-name", server.DefaultProductName, "product name presented to clients in connection.start (e.g. RabbitMQ, for clients that check it)")
	productVersion := fs.String("product-version", server.Version, "product version presented to clients in connection.start (with --product-name RabbitMQ, a RabbitMQ version such as 3.10.8)")
	promListen := fs.String("prometheus-listen", def.PrometheusListen, "TCP address of the Prometheus endpoints, /metrics, /metrics/per-object and /metrics/detailed with RabbitMQ's metric names (off disables it)")
	mgmtListen := fs.String("management-listen", def.ManagementListen, "TCP address of the management HTTP API, /api with RabbitMQ's endpoints (off disables it)")
	promCert := fs.String("prometheus-tls-cert", "", "serve the Prometheus endpoint over HTTPS with this certificate (PEM; with --prometheus-tls-key)")
	promKey := fs.String("prometheus-tls-key", "", "the private key (PEM) of --prometheus-tls-cert")
	mgmtCert := fs.String("management-tls-cert", "", "serve the management API over HTTPS with this certificate (PEM; with --management-tls-key)")
	mgmtKey := fs.String("management-tls-key", "", "the private key (PEM) of --management-tls-cert")
	cluster := clusterFlags(fs, def.Cluster)
	debugListen = fs.String("debug-listen", "", "serve Go's pprof profiles on this address (e.g. 127.0.0.1:6060); off by default")

	apply = func(b *configs.Broker) error {
		var err error
		fs.Visit(func(f *flag.Flag) {
			if err != nil {
				return
			}
			bad := func(e error) { err = fmt.Errorf("--%s: %w", f.Name, e) }
			switch f.Name {
			case "listen":
				ls := []configs.Listener{{Protocol: "amqp", Address: *listen}}
				for _, l := range b.Listeners {
					if l.Protocol == "amqps" {
						ls = append(ls, l)
					}
				}
				b.Listeners = ls
			case "data-dir":
				b.DataDir = *dataDir
			case "prometheus-listen":
				if e := configs.CheckHTTPListen(*promListen); e != nil {
					bad(e)
				} else {
					b.PrometheusListen = *promListen
				}
			case "management-listen":
				if e := configs.CheckHTTPListen(*mgmtListen); e != nil {
					bad(e)
				} else {
					b.ManagementListen = *mgmtListen
				}
			case "prometheus-tls-cert", "prometheus-tls-key":
				b.PrometheusTLS = &configs.TLS{CertFile: *promCert, KeyFile: *promKey, MinVersion: "1.2"}
			case "management-tls-cert", "management-tls-key":
				b.ManagementTLS = &configs.TLS{CertFile: *mgmtCert, KeyFile: *mgmtKey, MinVersion: "1.2"}
			case "log-level":
				b.Log.Level = *logLevel
			case "log-format":
				b.Log.Format = *logFormat
			case "queue-memory-messages":
				b.QueueMemory.Messages = *windowMsgs
			case "queue-memory-bytes":
				if n, e := configs.ParseByteSize(*windowBytes); e != nil {
					bad(e)
				} else {
					b.QueueMemory.Bytes = n
				}
			case "disk-free-limit":
				if n, e := configs.ParseByteSize(*diskFree); e != nil {
					bad(e)
				} else {
					b.DiskFreeLimit = n
				}
			case "memory-limit":
				if m, e := configs.ParseMemoryLimit(*memLimit); e != nil {
					bad(e)
				} else {
					b.MemoryLimit = m
				}
			case "frame-max":
				if n, e := configs.ParseByteSize(*frameMax); e != nil {
					bad(e)
				} else {
					b.Limits.FrameMax = n
				}
			case "channel-max":
				b.Limits.ChannelMax = *channelMax
			case "max-message-size":
				if n, e := configs.ParseByteSize(*maxMsg); e != nil {
					bad(e)
				} else {
					b.Limits.MaxMessageSize = n
				}
			case "max-connections":
				b.Limits.MaxConnections = *maxConns
			case "flow-control":
				b.FlowControl = *flowControl
			case "handshake-timeout":
				if d, e := configs.ParseDuration(*handshakeTimeout); e != nil {
					bad(e)
				} else {
					b.HandshakeTimeout = d
				}
			case "write-timeout":
				if d, e := configs.ParseDuration(*writeTimeout); e != nil {
					bad(e)
				} else {
					b.WriteTimeout = d
				}
			case "consumer-timeout":
				if d, e := configs.ParseDuration(*consumerTimeout); e != nil {
					bad(e)
				} else {
					b.ConsumerTimeout = d
				}
			case "heartbeat":
				if d, e := configs.ParseDuration(*heartbeat); e != nil {
					bad(e)
				} else {
					b.Heartbeat = d
				}
			case "product-name", "product-version":
				if f.Value.String() == "" {
					bad(errors.New("must not be empty"))
				} else if f.Name == "product-name" {
					b.Product.Name = *productName
				} else {
					b.Product.Version = *productVersion
				}
			}
		})
		if err != nil {
			return err
		}
		if err := cluster.apply(fs, &b.Cluster); err != nil {
			return err
		}
		return checkLimits(b)
	}
	return configPath, debugListen, apply
}

// checkLimits refuses values a flag may have set out of range (the file's are checked when
// it is loaded).
func checkLimits(b *configs.Broker) error {
	switch {
	case b.QueueMemory.Messages < 1 || b.QueueMemory.Bytes < 1:
		return errors.New("--queue-memory-messages and --queue-memory-bytes must be positive")
	case b.Limits.FrameMax < configs.MinFrameMax || b.Limits.FrameMax > configs.MaxFrameMax:
		return fmt.Errorf("--frame-max must be between %d and %d", configs.MinFrameMax, uint32(configs.MaxFrameMax))
	case b.Limits.ChannelMax < 1 || b.Limits.ChannelMax > configs.MaxChannelMax:
		return fmt.Errorf("--channel-max must be between 1 and %d", configs.MaxChannelMax)
	case b.Limits.MaxMessageSize < 1 || b.Limits.MaxMessageSize > configs.MaxMaxMessageSize:
		return fmt.Errorf("--max-message-size must be between 1 and %d", configs.MaxMaxMessageSize)
	case b.Limits.MaxConnections < 0:
		return errors.New("--max-connections must not be negative")
	case b.Heartbeat < 0:
		return errors.New("--heartbeat must not be negative")
	case b.HandshakeTimeout <= 0:
		return errors.New("--handshake-timeout must be more than 0s")
	case b.WriteTimeout <= 0:
		return errors.New("--write-timeout must be more than 0s")
	case b.ConsumerTimeout < 0:
		return errors.New("--consumer-timeout must not be negative")
	}
	if _, err := zerolog.ParseLevel(b.Log.Level); err != nil || b.Log.Level == "" {
		return fmt.Errorf("--log-level %q is not one of trace, debug, info, warn, error", b.Log.Level)
	}
	switch b.Log.Format {
	case "auto", "json", "console":
	default:
		return fmt.Errorf("--log-format %q is not one of auto, json, console", b.Log.Format)
	}
	return nil
}

// loadBroker reads the configuration (the file if given, else the defaults) and applies the
// flags over it.
func loadBroker(path string, apply func(*configs.Broker) error) (*configs.Broker, error) {
	b := configs.DefaultBroker()
	if path != "" {
		loaded, err := configs.LoadBroker(path)
		if err != nil {
			return nil, err
		}
		b = *loaded
	}
	if err := apply(&b); err != nil {
		return nil, err
	}
	return &b, nil
}

func run(args []string, logOut *os.File) error {
	fs := flag.NewFlagSet("warren", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage:
  warren [flags]                            run the broker
  warren passwd [PASSWORD]                  print a password hash for a definitions file
  warren config check FILE...               validate configuration and definitions files
  warren config reload [--config F | --data-dir D | --control-socket S]
  warren definitions export [--config F | --data-dir D | --control-socket S]
  warren definitions drift [--config F | --data-dir D | --control-socket S]
  warren definitions import FILE.json       print a RabbitMQ definitions.json as YAML
  warren ctl COMMAND [ARG...]               list, close, purge, delete, status, definitions,
                                            cluster, queues over the management API
                                            (warren ctl --help)

Flags (they override the configuration file; docs/configuration.md lists every setting):
`)
		fs.PrintDefaults()
	}
	configPath, debugListen, apply := brokerFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{err: fmt.Errorf("unexpected argument %q (see warren --help)", fs.Arg(0))}
	}
	b, err := loadBroker(*configPath, apply)
	if err != nil {
		return err
	}
	var defs *configs.Definitions
	if len(b.Definitions) > 0 {
		if defs, err = configs.LoadDefinitions(b.Definitions...); err != nil {
			return err
		}
	}
	level, _ := zerolog.ParseLevel(b.Log.Level)
	log := newLogger(logOut, level, b.Log.Format)

	log.Info().Str("version", server.Version).Str("data_dir", b.DataDir).Str("config", b.File).Msg("starting Warren")
	if b.Product != (configs.Product{}) {
		log.Info().Str("product_name", b.Product.Name).Str("product_version", b.Product.Version).
			Msg("connection.start presents the configured product (empty: Warren's own)")
	}
	// Listen first: a bad address should not leave a fresh data dir behind. Clients that
	// connect during recovery wait in the kernel's accept queue.
	lns, err := listen(b)
	if err != nil {
		return err
	}
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	promLn, err := listenHTTP("prometheus endpoint", "--prometheus-listen", b.PrometheusListen, b.PrometheusTLS, "prometheus-tls", b.File)
	if err != nil {
		return err
	}
	if promLn != nil {
		defer promLn.Close()
	}
	mgmtLn, err := listenHTTP("management API", "--management-listen", b.ManagementListen, b.ManagementTLS, "management-tls", b.File)
	if err != nil {
		return err
	}
	// The management API samples counters for rates until the broker stops.
	mctx, mstop := context.WithCancel(context.Background())
	defer mstop()
	if mgmtLn != nil {
		defer mgmtLn.Close()
	}
	if fi, err := os.Stat(b.DataDir); err == nil && !fi.IsDir() {
		return fmt.Errorf("data dir %s: not a directory", b.DataDir)
	}
	st, err := store.Open(store.Options{Dir: b.DataDir, Logger: log, DiskReserve: server.StoreReserve(int64(b.DiskFreeLimit))})
	if err != nil {
		return fmt.Errorf("data dir %s: %w", b.DataDir, err)
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error().Err(err).Msg("closing the store")
		}
	}()
	hb := time.Duration(b.Heartbeat)
	if hb == 0 {
		hb = -1 // offer 0: clients may disable heartbeats
	}
	memLimit, err := memoryLimit(b.MemoryLimit, log)
	if err != nil {
		return err
	}
	srv := server.New(server.Config{Logger: log, Store: st,
		MemoryLimit:      memLimit,
		DiskFreeLimit:    int64(b.DiskFreeLimit),
		QueueMemory:      server.QueueMemory{Messages: b.QueueMemory.Messages, Bytes: int64(b.QueueMemory.Bytes)},
		Heartbeat:        hb,
		FrameMax:         uint32(b.Limits.FrameMax),
		ChannelMax:       uint16(b.Limits.ChannelMax),
		MaxMessageSize:   int(b.Limits.MaxMessageSize),
		MaxConnections:   b.Limits.MaxConnections,
		HandshakeTimeout: time.Duration(b.HandshakeTimeout),
		WriteTimeout:     time.Duration(b.WriteTimeout),
		ConsumerTimeout:  consumerTimeout(b.ConsumerTimeout),
		LoopbackUsers:    b.LoopbackUsers,
		// The zero Config paces publishers; the file's default is true as well.
		DisableFlowControl: !b.FlowControl,
		Product:            server.Product{Name: b.Product.Name, Version: b.Product.Version},
	})
	if err := srv.Recover(); err != nil {
		return fmt.Errorf("data dir %s: %w", b.DataDir, err)
	}
	if defs != nil {
		if _, err := srv.ApplyDefinitions(defs); err != nil {
			return err
		}
	}
	// The cluster starts on the recovered model with the files applied: its metadata group
	// applies the replicated changes on top (cluster.go).
	member, err := startCluster(b, st, srv, log)
	if err != nil {
		return err
	}
	if member != nil {
		defer func() {
			if err := member.Close(); err != nil {
				log.Warn().Err(err).Msg("leaving the cluster")
			}
		}()
		// Clients may use any node: traffic for the queues other nodes hold is forwarded
		// (docs/cluster.md); stopped before the node closes.
		stopForwarding, err := srv.StartForwarding(member, forward.Options{})
		if err != nil {
			return err
		}
		defer func() {
			if err := stopForwarding(); err != nil {
				log.Warn().Err(err).Msg("stopping forwarding")
			}
		}()
	}

	reload := func() (string, error) { return reloadDefinitions(srv, *configPath, apply, b, log) }
	srv.SetDefinitionsLoader(func() (*configs.Definitions, error) {
		_, defs, err := loadDefinitions(*configPath, apply)
		return defs, err
	})
	ctl, err := listenControl(b.ControlSocketPath())
	if err != nil {
		return err
	}
	defer ctl.Close()
	go srv.ServeControl(ctl, func(cmd string) (string, error) {
		switch cmd {
		case server.ControlReload:
			return reload()
		case server.ControlExport:
			return exportYAML(srv)
		case server.ControlDrift:
			return driftText(srv)
		}
		return "", fmt.Errorf("unknown control command %q", cmd)
	})

	if *debugListen != "" {
		startDebug(*debugListen, log)
	}
	node, clusterName, product := identity(b), "", server.Product{Name: b.Product.Name, Version: b.Product.Version}
	if b.Cluster.Enabled() {
		clusterName = b.Cluster.Peers[0].Name // the same on every node (the list is)
	}
	if promLn != nil {
		h := metrics.Handler(srv, metrics.Identity{Node: node, Cluster: clusterName, Product: product}, log)
		defer serveHTTP(promLn, h, "Prometheus metrics on /metrics, /metrics/per-object, /metrics/detailed", log)()
	}
	if mgmtLn != nil {
		id := mgmt.Identity{Node: node, Cluster: clusterName, Product: product, Listen: mgmtLn.Addr().String(), TLS: b.ManagementTLS != nil, Membership: clusterView(member)}
		if m := srv.ClusterMembership(); m != nil && member != nil {
			id.Members = m // a node that leaves is taken out of the quorum queues first
		}
		h := mgmt.Handler(mctx, srv, id, log)
		defer serveHTTP(mgmtLn, h, "the management API on /api", log)()
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	served := make(chan error, len(lns))
	for _, ln := range lns {
		go func() { served <- srv.Serve(context.Background(), ln) }()
	}

	for {
		select {
		case err := <-served:
			return fmt.Errorf("serve: %w", err)
		case <-hup:
			if out, err := reload(); err != nil {
				log.Error().Str("errors", err.Error()).Msg("reload refused; the running definitions are unchanged")
			} else {
				log.Info().Str("result", out).Msg("reloaded on SIGHUP")
			}
			continue
		case <-ctx.Done():
		}
		break
	}
	// From here SIGINT and SIGTERM have their default effect again: an operator whose
	// shutdown hangs (a stuck disk, a store that cannot flush) ends it with a second signal,
	// which is no worse for the data than kill -9.
	stop()
	log.Info().Msg("signal received, shutting down; a second SIGINT or SIGTERM stops the broker at once")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	for range lns {
		if err := <-served; err != nil && !errors.Is(err, server.ErrServerClosed) {
			return fmt.Errorf("serve: %w", err)
		}
	}
	log.Info().Msg("stopped")
	return nil
}

// listen opens every listener of the configuration; amqps listeners wrap TCP in TLS.
func listen(b *configs.Broker) ([]net.Listener, error) {
	var lns []net.Listener
	fail := func(err error) ([]net.Listener, error) {
		for _, ln := range lns {
			_ = ln.Close()
		}
		return nil, err
	}
	for _, l := range b.Listeners {
		var tc *tls.Config
		if l.Protocol == "amqps" {
			var err error
			if tc, err = l.TLSConfig(); err != nil {
				return fail(err)
			}
		}
		ln, err := net.Listen("tcp", l.Address)
		if err != nil {
			return fail(fmt.Errorf("listen on %s: %w", l.Address, err))
		}
		if tc != nil {
			ln = server.NewTLSListener(ln, tc)
		}
		lns = append(lns, ln)
	}
	if len(lns) == 0 {
		return nil, errors.New("no listeners configured")
	}
	return lns, nil
}

// listenControl opens the control socket, owner-only. A socket file left by a broker that
// died is replaced; one that answers belongs to a running broker, which the data dir lock
// would refuse anyway.
func listenControl(path string) (net.Listener, error) {
	if c, err := net.Dial("unix", path); err == nil {
		_ = c.Close()
		return nil, fmt.Errorf("control socket %s: another broker is listening on it", path)
	}
	_ = os.Remove(path)
	old := syscall.Umask(0o077)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return ln, nil
}

// memoryLimit resolves the memory alarm's limit to bytes and makes it the Go runtime's soft
// memory limit too, so the garbage collector works harder, and returns memory to the system
// sooner, as the process nears it.
func memoryLimit(m configs.MemoryLimit, log zerolog.Logger) (int64, error) {
	var available uint64
	if m.Bytes == 0 {
		var err error
		if available, err = server.SystemMemory(); err != nil {
			return 0, fmt.Errorf("memory-limit %s: %w", m, err)
		}
	}
	limit := m.Resolve(available)
	debug.SetMemoryLimit(limit)
	log.Info().Int64("memory_limit", limit).Str("setting", m.String()).Msg("memory alarm limit")
	return limit, nil
}

// reloadDefinitions re-reads the configuration (for its list of definitions files) and the
// definitions, and applies them when all of them are valid. Settings that changed from running
// but wait for a restart are logged and listed in the result.
func reloadDefinitions(srv *server.Server, configPath string, apply func(*configs.Broker) error, running *configs.Broker, log zerolog.Logger) (string, error) {
	if configPath == "" {
		return "", errors.New("the broker was started without --config: there are no definitions files to reload")
	}
	b, defs, err := loadDefinitions(configPath, apply)
	if err != nil {
		return "", err
	}
	res, err := srv.ApplyDefinitions(defs)
	if err != nil {
		return "", err
	}
	// The alarms' limits change at runtime, as rabbitmqctl set_vm_memory_high_watermark and
	// set_disk_free_limit change RabbitMQ's.
	memLimit, err := memoryLimit(b.MemoryLimit, log)
	if err != nil {
		return "", err
	}
	srv.SetResourceLimits(memLimit, int64(b.DiskFreeLimit))
	restart := reportRestartNeeded(log, running, b)
	return fmt.Sprintf("reloaded: %d created, %d deleted, %d kept\n", len(res.Created), len(res.Deleted), len(res.Kept)) + restart, nil
}

// newLogger writes human-readable logs to a terminal (format auto) or when asked, JSON lines
// otherwise.
func newLogger(out *os.File, level zerolog.Level, format string) zerolog.Logger {
	var w io.Writer = out
	console := format == "console"
	if format == "auto" {
		fi, err := out.Stat()
		console = err == nil && fi.Mode()&os.ModeCharDevice != 0
	}
	if console {
		w = zerolog.ConsoleWriter{Out: out, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

// consumerTimeout is the server's form of the consumer-timeout setting: 0 (off) is negative.
func consumerTimeout(d configs.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return time.Duration(d)
}
