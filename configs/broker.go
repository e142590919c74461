package configs

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Broker is the broker configuration file (warren --config warren.yaml). Command-line flags
// override it; docs/configuration.md lists every key with its default and flag.
type Broker struct {
	File             string      // the path it was loaded from; "" for DefaultBroker
	Listeners        []Listener  // listeners
	DataDir          string      // data-dir
	QueueMemory      QueueMemory // queue-memory
	DiskFreeLimit    ByteSize    // disk-free-limit; -1 disables the check
	MemoryLimit      MemoryLimit // memory-limit
	Limits           Limits      // limits
	Heartbeat        Duration    // heartbeat; 0 lets clients disable heartbeats
	HandshakeTimeout Duration    // handshake-timeout
	WriteTimeout     Duration    // write-timeout
	// ConsumerTimeout is consumer-timeout: a delivery left unacknowledged longer closes its
	// channel with 406, as RabbitMQ's consumer_timeout (default 30m); 0 disables it.
	ConsumerTimeout Duration
	Log             Log      // log
	LoopbackUsers   []string // loopback-users: these users may only log in from 127.0.0.1 or ::1
	Definitions     []string // definitions: the files to load, globs expanded, in order
	// ControlSocket is control-socket; "" means the default, warren.sock in the data dir
	// (see ControlSocketPath).
	ControlSocket string
	// FlowControl is flow-control: pace publishers by the consumers of congested queues while
	// the CPUs are saturated (default true).
	FlowControl bool
	Product     Product // product: the name and version presented in connection.start
	// PrometheusListen is prometheus-listen: the TCP address of the Prometheus endpoint
	// (/metrics), default ":15692" as RabbitMQ's; "off" disables it.
	PrometheusListen string
	// ManagementListen is management-listen: the TCP address of the management HTTP API
	// (/api), default ":15672" as RabbitMQ's; "off" disables it.
	ManagementListen string
	// ManagementTLS and PrometheusTLS are management-tls and prometheus-tls: when set, the
	// endpoint speaks HTTPS (the keys of a listener's tls section).
	ManagementTLS, PrometheusTLS *TLS
	// Cluster is the node's cluster membership (cluster.go); without peers it runs alone.
	Cluster Cluster
}

// HTTPOff is the prometheus-listen and management-listen value that disables the endpoint.
const HTTPOff = "off"

// CheckHTTPListen checks a prometheus-listen or management-listen value: "off" or a host:port
// address.
func CheckHTTPListen(s string) error {
	if s == HTTPOff {
		return nil
	}
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is neither a host:port address nor off: %w", s, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", s, port)
	}
	return nil
}

// Listener is one address the broker accepts connections on.
type Listener struct {
	Protocol string // "amqp" or "amqps"
	Address  string // host:port, ":5672" by default (":5671" for amqps)
	TLS      *TLS   // required for amqps, refused for amqp
	Pos      Pos    // where the listener is defined, for errors found when it is started
}

// TLS is a listener's tls section. File paths are resolved against the configuration
// file's directory.
type TLS struct {
	CertFile, KeyFile, CAFile string
	VerifyPeer                bool   // ask for a client certificate and verify it if given
	FailIfNoPeerCert          bool   // refuse clients without a verified certificate
	MinVersion                string // "1.2" (default) or "1.3"
}

// QueueMemory bounds the ready messages each queue keeps in memory; the rest waits on disk.
type QueueMemory struct {
	Messages int      // messages
	Bytes    ByteSize // bytes (of message bodies)
}

// Limits are the connection limits offered to clients in connection.tune and enforced.
type Limits struct {
	FrameMax       ByteSize // frame-max
	ChannelMax     int      // channel-max
	MaxMessageSize ByteSize // max-message-size
	MaxConnections int      // max-connections; 0 is unlimited
}

// Log is the log section.
type Log struct {
	Level  string // trace, debug, info, warn, error
	Format string // auto (console on a terminal, JSON otherwise), json, console
}

// The limits' bounds.
const (
	MinFrameMax   = 4096
	MaxFrameMax   = 1<<32 - 1
	MaxChannelMax = 65535
	// MaxMaxMessageSize is what one store record holds (store.MaxBody, just under 63 MiB,
	// with room for properties); a test in server keeps the two in step. RabbitMQ allows
	// 512 MiB.
	MaxMaxMessageSize = 62 << 20
)

// DefaultBroker is the configuration Warren runs with when no file is given.
func DefaultBroker() Broker {
	return Broker{
		Listeners:        []Listener{{Protocol: "amqp", Address: ":5672"}},
		DataDir:          "./data",
		QueueMemory:      QueueMemory{Messages: 8192, Bytes: 32 << 20},
		DiskFreeLimit:    128 << 20,
		MemoryLimit:      DefaultMemoryLimit,
		Limits:           Limits{FrameMax: 131072, ChannelMax: 2047, MaxMessageSize: 16 << 20},
		Heartbeat:        Duration(60 * time.Second),
		HandshakeTimeout: Duration(10 * time.Second),
		WriteTimeout:     Duration(30 * time.Second),
		ConsumerTimeout:  Duration(30 * time.Minute),
		FlowControl:      true,
		Log:              Log{Level: "info", Format: "auto"},
		LoopbackUsers:    []string{"guest"},
		PrometheusListen: ":15692",
		ManagementListen: ":15672",
	}
}

// ControlSocketPath is ControlSocket, or warren.sock in the data dir when it is not set.
func (b *Broker) ControlSocketPath() string {
	if b.ControlSocket != "" {
		return b.ControlSocket
	}
	return filepath.Join(b.DataDir, "warren.sock")
}

var brokerKeys = []string{"listeners", "data-dir", "queue-memory", "disk-free-limit", "memory-limit", "limits", "heartbeat",
	"handshake-timeout", "write-timeout", "consumer-timeout", "log", "loopback-users", "definitions", "control-socket", "flow-control", "product",
	"prometheus-listen", "management-listen", "prometheus-tls", "management-tls",
	"node-name", "cluster-listen", "cluster-advertise", "cluster-peers", "cluster-secret-file", "cluster-tls"}

// LoadBroker reads the broker configuration at path over DefaultBroker. Relative paths in
// the file (data-dir, control-socket, definitions, TLS files) and the default data dir are
// resolved against the file's directory; definitions globs are expanded. The error is an
// ErrorList of every problem found.
func LoadBroker(path string) (*Broker, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, ErrorList{{Pos: Pos{File: path}, Msg: fmt.Sprintf("cannot read the configuration: %v", err)}}
	}
	return ParseBroker(path, data)
}

// ParseBroker is LoadBroker for a file already read; path still locates relative paths.
func ParseBroker(path string, data []byte) (*Broker, error) {
	root, err := parseYAML(path, data)
	if err != nil {
		return nil, err
	}
	d := &decoder{file: path}
	b := DefaultBroker()
	b.File = path
	dir := filepath.Dir(path)
	b.DataDir = filepath.Join(dir, b.DataDir)
	f, ok := d.mapping(root, "", brokerKeys, nil)
	if ok {
		d.broker(f, &b, dir)
	}
	if err := d.errs.err(); err != nil {
		return nil, err
	}
	return &b, nil
}

func (d *decoder) broker(f fields, b *Broker, dir string) {
	if n, ok := f.get("listeners"); ok {
		d.listeners(n, b, dir)
	}
	if n, ok := f.get("data-dir"); ok {
		if s, ok := d.path(n, "data-dir", dir); ok {
			b.DataDir = s
		}
	}
	if n, ok := f.get("queue-memory"); ok {
		d.queueMemory(n, &b.QueueMemory)
	}
	if n, ok := f.get("disk-free-limit"); ok {
		if v, ok := d.byteSize(n, "disk-free-limit"); ok {
			if v < -1 {
				d.errorf(n, "disk-free-limit", "disk-free-limit %d is below the minimum of 0 (or -1 to disable the check)", v)
			} else {
				b.DiskFreeLimit = v
			}
		}
	}
	if n, ok := f.get("memory-limit"); ok {
		if v, ok := d.memoryLimit(n, "memory-limit"); ok {
			b.MemoryLimit = v
		}
	}
	if n, ok := f.get("limits"); ok {
		d.limits(n, &b.Limits)
	}
	if n, ok := f.get("flow-control"); ok {
		if v, ok := d.boolean(n, "flow-control"); ok {
			b.FlowControl = v
		}
	}
	if n, ok := f.get("heartbeat"); ok {
		if v, ok := d.duration(n, "heartbeat"); ok {
			if v%Duration(time.Second) != 0 || v > Duration(65535*time.Second) {
				d.errorf(n, "heartbeat", "heartbeat %s is not a whole number of seconds up to 65535s", v)
			} else {
				b.Heartbeat = v
			}
		}
	}
	if n, ok := f.get("handshake-timeout"); ok {
		if v, ok := d.duration(n, "handshake-timeout"); ok {
			if v == 0 {
				d.errorf(n, "handshake-timeout", "handshake-timeout must be more than 0s")
			} else {
				b.HandshakeTimeout = v
			}
		}
	}
	if n, ok := f.get("write-timeout"); ok {
		if v, ok := d.duration(n, "write-timeout"); ok {
			if v == 0 {
				d.errorf(n, "write-timeout", "write-timeout must be more than 0s")
			} else {
				b.WriteTimeout = v
			}
		}
	}
	if n, ok := f.get("consumer-timeout"); ok {
		if v, ok := d.duration(n, "consumer-timeout"); ok {
			if v%Duration(time.Millisecond) != 0 || v > Duration(maxExpiry*time.Millisecond) {
				d.errorf(n, "consumer-timeout", "consumer-timeout %s is not a whole number of milliseconds up to ten years", v)
			} else {
				b.ConsumerTimeout = v
			}
		}
	}
	if n, ok := f.get("log"); ok {
		if lf, ok := d.mapping(n, "log", []string{"level", "format"}, nil); ok {
			if n, ok := lf.get("level"); ok {
				if s, ok := d.enum(n, "log.level", "log level", "trace", "debug", "info", "warn", "error"); ok {
					b.Log.Level = s
				}
			}
			if n, ok := lf.get("format"); ok {
				if s, ok := d.enum(n, "log.format", "log format", "auto", "json", "console"); ok {
					b.Log.Format = s
				}
			}
		}
	}
	if n, ok := f.get("loopback-users"); ok {
		if users, ok := d.strList(n, "loopback-users"); ok {
			b.LoopbackUsers = users
			if b.LoopbackUsers == nil {
				b.LoopbackUsers = []string{}
			}
		}
	}
	if n, ok := f.get("definitions"); ok {
		b.Definitions = d.definitionPaths(n, dir)
	}
	if n, ok := f.get("control-socket"); ok {
		if s, ok := d.path(n, "control-socket", dir); ok {
			b.ControlSocket = s
		}
	}
	if n, ok := f.get("product"); ok {
		d.product(n, &b.Product)
	}
	if n, ok := f.get("prometheus-listen"); ok {
		if s, ok := d.str(n, "prometheus-listen"); ok {
			if err := CheckHTTPListen(s); err != nil {
				d.errorf(n, "prometheus-listen", "prometheus-listen %v", err)
			} else {
				b.PrometheusListen = s
			}
		}
	}
	if n, ok := f.get("management-listen"); ok {
		if s, ok := d.str(n, "management-listen"); ok {
			if err := CheckHTTPListen(s); err != nil {
				d.errorf(n, "management-listen", "management-listen %v", err)
			} else {
				b.ManagementListen = s
			}
		}
	}
	d.cluster(f, &b.Cluster, dir)
	if n, ok := f.get("management-tls"); ok {
		b.ManagementTLS = d.tls(n, "management-tls", dir)
	}
	if n, ok := f.get("prometheus-tls"); ok {
		b.PrometheusTLS = d.tls(n, "prometheus-tls", dir)
	}
}

// path reads a non-empty path and resolves it against dir.
func (d *decoder) path(n *yaml.Node, path, dir string) (string, bool) {
	s, ok := d.str(n, path)
	if !ok {
		return "", false
	}
	if s == "" {
		d.errorf(n, path, "path must not be empty")
		return "", false
	}
	if !filepath.IsAbs(s) {
		s = filepath.Join(dir, s)
	}
	return s, true
}

func (d *decoder) queueMemory(n *yaml.Node, q *QueueMemory) {
	f, ok := d.mapping(n, "queue-memory", []string{"messages", "bytes"}, nil)
	if !ok {
		return
	}
	if n, ok := f.get("messages"); ok {
		if v, ok := d.intIn(n, "queue-memory.messages", "queue-memory.messages", 1, 1<<31-1); ok {
			q.Messages = int(v)
		}
	}
	if n, ok := f.get("bytes"); ok {
		if v, ok := d.byteSize(n, "queue-memory.bytes"); ok {
			if msg := rangeMsg("queue-memory.bytes", int64(v), 1, 1<<40); msg != "" {
				d.errorf(n, "queue-memory.bytes", "%s", msg)
			} else {
				q.Bytes = v
			}
		}
	}
}

func (d *decoder) limits(n *yaml.Node, l *Limits) {
	f, ok := d.mapping(n, "limits", []string{"frame-max", "channel-max", "max-message-size", "max-connections"}, nil)
	if !ok {
		return
	}
	size := func(key string, lo, hi int64, dst *ByteSize) {
		n, ok := f.get(key)
		if !ok {
			return
		}
		p := child("limits", key)
		if v, ok := d.byteSize(n, p); ok {
			if msg := rangeMsg(key, int64(v), lo, hi); msg != "" {
				d.errorf(n, p, "%s", msg)
			} else {
				*dst = v
			}
		}
	}
	count := func(key string, lo, hi int64, dst *int) {
		if n, ok := f.get(key); ok {
			if v, ok := d.intIn(n, child("limits", key), key, lo, hi); ok {
				*dst = int(v)
			}
		}
	}
	size("frame-max", MinFrameMax, MaxFrameMax, &l.FrameMax)
	count("channel-max", 1, MaxChannelMax, &l.ChannelMax)
	size("max-message-size", 1, MaxMaxMessageSize, &l.MaxMessageSize)
	count("max-connections", 0, 1<<31-1, &l.MaxConnections)
}

func (d *decoder) listeners(n *yaml.Node, b *Broker, dir string) {
	items, ok := d.list(n, "listeners")
	if !ok {
		return
	}
	if len(items) == 0 {
		d.errorf(n, "listeners", "at least one listener is required")
		return
	}
	b.Listeners = nil
	seen := map[string]Pos{}
	for i, item := range items {
		p := index("listeners", i)
		l, ok := d.listener(item, p, dir)
		if !ok {
			continue
		}
		if prev, dup := seen[l.Address]; dup {
			d.errorf(item, child(p, "address"), "address %q is already used by the listener at %s", l.Address, prev)
			continue
		}
		seen[l.Address] = l.Pos
		b.Listeners = append(b.Listeners, l)
	}
}

func (d *decoder) listener(n *yaml.Node, path, dir string) (Listener, bool) {
	n = deref(n)
	l := Listener{Protocol: "amqp", Pos: d.pos(n)}
	f, ok := d.mapping(n, path, []string{"protocol", "address", "tls"}, nil)
	if !ok {
		return l, false
	}
	nerr := len(d.errs)
	if n, ok := f.get("protocol"); ok {
		if s, ok := d.enum(n, child(path, "protocol"), "protocol", "amqp", "amqps"); ok {
			l.Protocol = s
		}
	}
	l.Address = ":5672"
	if l.Protocol == "amqps" {
		l.Address = ":5671"
	}
	if n, ok := f.get("address"); ok {
		if s, ok := d.str(n, child(path, "address")); ok {
			if err := checkAddress(s); err != nil {
				d.errorf(n, child(path, "address"), "%v", err)
			} else {
				l.Address = s
			}
		}
	}
	tn, hasTLS := f.get("tls")
	switch {
	case hasTLS && l.Protocol == "amqp":
		d.errorf(tn, child(path, "tls"), "tls is set but protocol is amqp; use protocol: amqps")
	case hasTLS:
		l.TLS = d.tls(tn, child(path, "tls"), dir)
	case l.Protocol == "amqps":
		d.errorf(f.node, path, "protocol amqps requires a tls section with cert-file and key-file")
	}
	return l, len(d.errs) == nerr
}

// checkAddress accepts host:port with a numeric port; the host may be empty.
func checkAddress(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return fmt.Errorf("address %q: %s", s, ae.Err)
		}
		return fmt.Errorf("address %q: %w", s, err)
	}
	var p int
	if _, err := fmt.Sscanf(port, "%d", &p); err != nil || p < 0 || p > 65535 || fmt.Sprint(p) != port {
		return fmt.Errorf("address %q: port %q is not a number from 0 to 65535", s, port)
	}
	return nil
}

func (d *decoder) tls(n *yaml.Node, path, dir string) *TLS {
	f, ok := d.mapping(n, path, []string{"cert-file", "key-file", "ca-file", "verify-peer", "fail-if-no-peer-cert", "min-version"}, nil)
	if !ok {
		return nil
	}
	t := &TLS{MinVersion: "1.2"}
	file := func(key string, dst *string) {
		if n, ok := f.get(key); ok {
			if s, ok := d.path(n, child(path, key), dir); ok {
				*dst = s
			}
		}
	}
	flag := func(key string, dst *bool) {
		if n, ok := f.get(key); ok {
			*dst, _ = d.boolean(n, child(path, key))
		}
	}
	d.required(f, path, "cert-file", "key-file")
	file("cert-file", &t.CertFile)
	file("key-file", &t.KeyFile)
	file("ca-file", &t.CAFile)
	flag("verify-peer", &t.VerifyPeer)
	flag("fail-if-no-peer-cert", &t.FailIfNoPeerCert)
	if n, ok := f.get("min-version"); ok {
		if s, ok := d.enum(n, child(path, "min-version"), "min-version", "1.2", "1.3"); ok {
			t.MinVersion = s
		}
	}
	if n, ok := f.get("fail-if-no-peer-cert"); ok && t.FailIfNoPeerCert && !t.VerifyPeer {
		d.errorf(n, child(path, "fail-if-no-peer-cert"), "fail-if-no-peer-cert requires verify-peer: true")
	}
	if n, ok := f.get("verify-peer"); ok && t.VerifyPeer && t.CAFile == "" {
		d.errorf(n, child(path, "verify-peer"), "verify-peer requires ca-file to verify client certificates against")
	}
	return t
}

// definitionPaths resolves and expands the definitions list. A plain path must exist; a
// glob may match nothing. Each file is listed once, in order.
func (d *decoder) definitionPaths(n *yaml.Node, dir string) []string {
	items, ok := d.list(n, "definitions")
	if !ok {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	addFile := func(p string) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for i, item := range items {
		p := index("definitions", i)
		s, ok := d.path(item, p, dir)
		if !ok {
			continue
		}
		if !strings.ContainsAny(s, "*?[") {
			if _, err := os.Stat(s); err != nil {
				d.errorf(item, p, "definitions file: %v", err)
				continue
			}
			addFile(s)
			continue
		}
		matches, err := filepath.Glob(s)
		if err != nil {
			d.errorf(item, p, "definitions glob %q: %v", s, err)
			continue
		}
		for _, m := range matches {
			addFile(m)
		}
	}
	return out
}
