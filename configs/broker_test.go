package configs

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/configs/tlstest"
)

func TestLoadBrokerEmptyFileIsDefaults(t *testing.T) {
	paths := writeFiles(t, "warren.yaml", "# nothing set\n")
	b, err := LoadBroker(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultBroker()
	want.File = paths[0]
	want.DataDir = filepath.Join(filepath.Dir(paths[0]), "data")
	if !reflect.DeepEqual(*b, want) {
		t.Errorf("got  %+v\nwant %+v", *b, want)
	}
	if got := b.ControlSocketPath(); got != filepath.Join(want.DataDir, "warren.sock") {
		t.Errorf("control socket %s", got)
	}
}

func TestLoadBrokerEverySetting(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"defs/b.yaml", "defs/a.yaml", "defs/skip.txt", "extra.json"} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, "warren.yaml")
	if err := os.WriteFile(p, []byte(`
listeners:
  - address: 127.0.0.1:5672
  - protocol: amqps
    tls: {cert-file: tls/cert.pem, key-file: /etc/key.pem, ca-file: tls/ca.pem, verify-peer: true, fail-if-no-peer-cert: true, min-version: "1.3"}
data-dir: /var/lib/warren
queue-memory: {messages: 100, bytes: 1MiB}
disk-free-limit: -1
memory-limit: 3GiB
limits: {frame-max: 64KiB, channel-max: 100, max-message-size: 1MB, max-connections: 500}
heartbeat: 0
handshake-timeout: 1m30s
write-timeout: 5s
consumer-timeout: 90s
log: {level: debug, format: json}
loopback-users: []
definitions: [defs/*.yaml, extra.json, defs/a.yaml]
control-socket: run/warren.sock
flow-control: false
product: {name: RabbitMQ, version: 3.10.8}
prometheus-listen: 127.0.0.1:9419
management-listen: 127.0.0.1:9420
management-tls: {cert-file: tls/cert.pem, key-file: tls/key.pem}
prometheus-tls: {cert-file: tls/cert.pem, key-file: tls/key.pem, min-version: "1.3"}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := LoadBroker(p)
	if err != nil {
		t.Fatal(err)
	}
	want := Broker{
		File: p,
		Listeners: []Listener{
			{Protocol: "amqp", Address: "127.0.0.1:5672", Pos: Pos{File: p, Line: 3, Col: 5}},
			{Protocol: "amqps", Address: ":5671", Pos: Pos{File: p, Line: 4, Col: 5}, TLS: &TLS{CertFile: filepath.Join(dir, "tls/cert.pem"), KeyFile: "/etc/key.pem",
				CAFile: filepath.Join(dir, "tls/ca.pem"), VerifyPeer: true, FailIfNoPeerCert: true, MinVersion: "1.3"}},
		},
		DataDir:          "/var/lib/warren",
		QueueMemory:      QueueMemory{Messages: 100, Bytes: 1 << 20},
		DiskFreeLimit:    -1,
		MemoryLimit:      MemoryLimit{Bytes: 3 << 30},
		Limits:           Limits{FrameMax: 65536, ChannelMax: 100, MaxMessageSize: 1e6, MaxConnections: 500},
		Heartbeat:        0,
		HandshakeTimeout: Duration(90 * time.Second),
		WriteTimeout:     Duration(5 * time.Second),
		ConsumerTimeout:  Duration(90 * time.Second),
		Log:              Log{Level: "debug", Format: "json"},
		LoopbackUsers:    []string{},
		Definitions:      []string{filepath.Join(dir, "defs/a.yaml"), filepath.Join(dir, "defs/b.yaml"), filepath.Join(dir, "extra.json")},
		ControlSocket:    filepath.Join(dir, "run/warren.sock"),
		FlowControl:      false,
		Product:          Product{Name: "RabbitMQ", Version: "3.10.8"},
		PrometheusListen: "127.0.0.1:9419",
		ManagementListen: "127.0.0.1:9420",
		ManagementTLS:    &TLS{CertFile: filepath.Join(dir, "tls/cert.pem"), KeyFile: filepath.Join(dir, "tls/key.pem"), MinVersion: "1.2"},
		PrometheusTLS:    &TLS{CertFile: filepath.Join(dir, "tls/cert.pem"), KeyFile: filepath.Join(dir, "tls/key.pem"), MinVersion: "1.3"},
	}
	if !reflect.DeepEqual(*b, want) {
		t.Errorf("got  %+v\nwant %+v", *b, want)
	}
}

func TestLoadBrokerReportsEveryProblem(t *testing.T) {
	_, err := ParseBroker("warren.yaml", []byte(`listeners:
  - {address: ":5672"}
  - {address: ":5672"}
  - {protocol: amqps}
  - {protocol: amqp, tls: {cert-file: c.pem, key-file: k.pem}}
  - {protocol: amqps, address: "5671", tls: {cert-file: c.pem, fail-if-no-peer-cert: true, min-version: "1.1"}}
  - {protocol: amqps, address: ":99999", tls: {cert-file: c.pem, key-file: k.pem, verify-peer: true}}
data-dir: ""
queue-memory: {messages: 0, bytes: ten}
disk-free-limit: -2
limits: {frame-max: 1024, channel-max: 65536, max-message-size: 1GiB, max-connections: -1, frame_max: 1}
heartbeat: 1500ms
handshake-timeout: 5 mins
log: {level: verbose, format: [json]}
loopback-users: guest
definitions: [missing.yaml, "[bad"]
listen: ":5672"
flow-control: sometimes
product: {name: "", version: [3], vendor: x}
consumer-timeout: 1500us
`))
	wantProblems(t, err,
		`warren.yaml:3:5: listeners[1].address: address ":5672" is already used by the listener at warren.yaml:2:5`,
		`warren.yaml:4:5: listeners[2]: protocol amqps requires a tls section with cert-file and key-file`,
		`warren.yaml:5:27: listeners[3].tls: tls is set but protocol is amqp; use protocol: amqps`,
		`warren.yaml:6:32: listeners[4].address: address "5671": missing port in address`,
		`warren.yaml:6:45: listeners[4].tls: missing required key "key-file"`,
		`warren.yaml:6:86: listeners[4].tls.fail-if-no-peer-cert: fail-if-no-peer-cert requires verify-peer: true`,
		`warren.yaml:6:105: listeners[4].tls.min-version: min-version "1.1" is not one of 1.2, 1.3`,
		`warren.yaml:7:32: listeners[5].address: address ":99999": port "99999" is not a number from 0 to 65535`,
		`warren.yaml:7:96: listeners[5].tls.verify-peer: verify-peer requires ca-file to verify client certificates against`,
		`warren.yaml:8:11: data-dir: path must not be empty`,
		`warren.yaml:9:26: queue-memory.messages: queue-memory.messages 0 is below the minimum of 1`,
		`warren.yaml:9:36: queue-memory.bytes: size "ten" is not an integer with an optional unit, such as 64MiB`,
		`warren.yaml:10:18: disk-free-limit: disk-free-limit -2 is below the minimum of 0 (or -1 to disable the check)`,
		`warren.yaml:11:21: limits.frame-max: frame-max 1024 is below the minimum of 4096`,
		`warren.yaml:11:40: limits.channel-max: channel-max 65536 is above the maximum of 65535`,
		`warren.yaml:11:65: limits.max-message-size: max-message-size 1073741824 is above the maximum of 65011712`,
		`warren.yaml:11:88: limits.max-connections: max-connections -1 is below the minimum of 0`,
		`warren.yaml:11:92: limits: unknown key "frame_max"; expected one of: frame-max, channel-max, max-message-size, max-connections`,
		`warren.yaml:12:12: heartbeat: heartbeat 1.5s is not a whole number of seconds up to 65535s`,
		`warren.yaml:13:20: handshake-timeout: duration "5 mins": time: unknown unit " mins" in duration "5 mins"`,
		`warren.yaml:14:14: log.level: log level "verbose" is not one of trace, debug, info, warn, error`,
		`warren.yaml:14:31: log.format: expected a string, got a list`,
		`warren.yaml:15:17: loopback-users: expected a list, got "guest"`,
		`warren.yaml:16:15: definitions[0]: definitions file: stat missing.yaml: no such file or directory`,
		`warren.yaml:16:29: definitions[1]: definitions glob "[bad": syntax error in pattern`,
		`warren.yaml:17:1: unknown key "listen"; expected one of: listeners, data-dir, queue-memory, disk-free-limit, memory-limit, limits, heartbeat, handshake-timeout, write-timeout, consumer-timeout, log, loopback-users, definitions, control-socket, flow-control, product, prometheus-listen, management-listen, prometheus-tls, management-tls, node-name, cluster-listen, cluster-advertise, cluster-peers, cluster-secret-file, cluster-tls`,
		`warren.yaml:18:15: flow-control: expected a boolean, got "sometimes"`,
		`warren.yaml:19:17: product.name: name must not be empty; leave it out for Warren's own`,
		`warren.yaml:19:30: product.version: expected a string, got a list`,
		`warren.yaml:19:35: product: unknown key "vendor"; expected one of: name, version`,
		`warren.yaml:20:19: consumer-timeout: consumer-timeout 1.5ms is not a whole number of milliseconds up to ten years`,
	)
}

func TestListenerTLSConfig(t *testing.T) {
	dir := t.TempDir()
	_, key := tlstest.WriteSelfSigned(t, dir)
	p := filepath.Join(dir, "warren.yaml")
	if err := os.WriteFile(p, []byte(`listeners:
  - {protocol: amqp}
  - {protocol: amqps, tls: {cert-file: cert.pem, key-file: key.pem}}
  - {protocol: amqps, address: ":5673", tls: {cert-file: cert.pem, key-file: key.pem, ca-file: cert.pem, verify-peer: true, min-version: "1.3"}}
  - {protocol: amqps, address: ":5674", tls: {cert-file: cert.pem, key-file: key.pem, ca-file: cert.pem, verify-peer: true, fail-if-no-peer-cert: true}}
  - {protocol: amqps, address: ":5675", tls: {cert-file: key.pem, key-file: key.pem}}
  - {protocol: amqps, address: ":5676", tls: {cert-file: cert.pem, key-file: key.pem, ca-file: key.pem, verify-peer: true}}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := LoadBroker(p)
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err := b.Listeners[0].TLSConfig(); cfg != nil || err != nil {
		t.Errorf("plain listener: %v, %v", cfg, err)
	}
	for i, want := range []struct {
		auth tls.ClientAuthType
		min  uint16
		cas  bool
	}{{tls.NoClientCert, tls.VersionTLS12, false}, {tls.VerifyClientCertIfGiven, tls.VersionTLS13, true}, {tls.RequireAndVerifyClientCert, tls.VersionTLS12, true}} {
		cfg, err := b.Listeners[i+1].TLSConfig()
		if err != nil {
			t.Fatalf("listener %d: %v", i+1, err)
		}
		if len(cfg.Certificates) != 1 || cfg.ClientAuth != want.auth || cfg.MinVersion != want.min || (cfg.ClientCAs != nil) != want.cas {
			t.Errorf("listener %d: auth %v min %x CAs %v", i+1, cfg.ClientAuth, cfg.MinVersion, cfg.ClientCAs != nil)
		}
	}
	_, err = b.Listeners[4].TLSConfig()
	if want := p + `:6:5: listener :5675: cert-file "` + key + `", key-file "` + key + `": tls: failed to find certificate PEM data in certificate input, but did find a private key; PEM inputs may have been switched`; err == nil || err.Error() != want {
		t.Errorf("swapped files:\n got %v\nwant %s", err, want)
	}
	_, err = b.Listeners[5].TLSConfig()
	if want := p + `:7:5: listener :5676: ca-file "` + key + `" holds no PEM certificates`; err == nil || err.Error() != want {
		t.Errorf("key as CA:\n got %v\nwant %s", err, want)
	}
	missing := Listener{Protocol: "amqps", Address: ":1", Pos: Pos{File: "w.yaml", Line: 2, Col: 5}, TLS: &TLS{CertFile: "/nonexistent/c.pem", KeyFile: "/nonexistent/k.pem"}}
	if _, err := missing.TLSConfig(); err == nil || !strings.HasPrefix(err.Error(), `w.yaml:2:5: listener :1: cert-file "/nonexistent/c.pem", key-file "/nonexistent/k.pem": open /nonexistent/c.pem: no such file or directory`) {
		t.Errorf("missing files: %v", err)
	}
}
