package conformance

// The harness for the configuration-file tests (config_*_test.go): they run the real warren
// binary with --config, as an operator would, talk to it with amqp091-go and drive its
// subcommands (passwd, config check, config reload, definitions export).
//
// TestConfigFiles builds the binary once and runs every area as a parallel subtest, each with its
// own configuration directory and broker process:
//
//	go test ./conformance/ -run 'TestConfigFiles/Reload' -v

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.yaml.in/yaml/v3"
)

// TestConfigFiles runs the configuration-file tests against one build of cmd/warren.
func TestConfigFiles(t *testing.T) {
	bin := buildWarrenBinary(t)
	for _, area := range []struct {
		name string
		test func(*testing.T, string)
	}{
		{"Passwd", testConfigPasswd},
		{"Permissions", testConfigPermissions},
		{"TLS", testConfigTLS},
		{"Reload", testConfigReload},
		{"RejectedReload", testConfigRejectedReload},
		{"StartupErrors", testConfigStartupErrors},
		{"ExampleFiles", testConfigExampleFiles},
		{"Flags", testConfigFlags},
		{"RabbitMQDefinitions", testConfigRabbitMQDefinitions},
		{"Prune", testConfigPrune},
		{"Policies", testConfigPolicies},
		{"Product", testConfigProduct},
		{"ReloadRestart", testConfigReloadRestart},
		{"ConsumerTimeout", testConfigConsumerTimeout},
	} {
		t.Run(area.name, func(t *testing.T) {
			t.Parallel()
			area.test(t, bin)
		})
	}
}

// cfgCommandTimeout bounds a warren subcommand (passwd, config check, reload, export).
const cfgCommandTimeout = 20 * time.Second

// dedent strips the newline that starts a raw string literal and the indentation of its first
// line from every line, so that YAML can be written indented with the Go code around it. Line
// 1 of the result is the literal's first non-empty line.
func dedent(s string) string {
	s = strings.TrimPrefix(s, "\n")
	indent := s[:len(s)-len(strings.TrimLeft(s, "\t"))]
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, indent)
	}
	return strings.TrimRight(strings.Join(lines, "\n"), "\t") // the closing backquote's line
}

// writeCfgFile writes text to dir/name, atomically (a rename), so that a reload never reads half
// a file.
func writeCfgFile(t testing.TB, dir, name, text string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// passwordHash is RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt +
// password)) with a 4-byte salt. The tests compute it themselves, independently of `warren
// passwd`, which testConfigPasswd checks against it.
func passwordHash(password string) string {
	salt := make([]byte, 4)
	_, _ = rand.Read(salt)
	sum := sha256.Sum256(append(slices.Clone(salt), password...))
	return base64.StdEncoding.EncodeToString(append(salt, sum[:]...))
}

// simpleConfig is a broker config with one AMQP listener on addr, the data dir in the config
// directory and the definitions in defs.yaml.
func simpleConfig(addr string) string {
	return fmt.Sprintf("listeners:\n  - protocol: amqp\n    address: %s\ndata-dir: data\ndefinitions: [defs.yaml]\n", addr)
}

// cfgBroker is one warren process started with --config dir/warren.yaml.
type cfgBroker struct {
	t    *testing.T
	bin  string
	dir  string // warren.yaml, defs.yaml, data/
	addr string // the plain AMQP listener
	cmd  *exec.Cmd
	log  *cfgLog

	exited     chan struct{} // closed when Wait has returned
	waitErr    error         // set before exited is closed
	terminated bool          // stopped by terminate
}

// startCfgBroker writes warren.yaml (one AMQP listener on a free port, data dir "data",
// definitions defs.yaml) and defs.yaml into a fresh directory, and starts the broker.
func startCfgBroker(t *testing.T, bin, defs string) *cfgBroker {
	t.Helper()
	dir := t.TempDir()
	addr := freeAddr(t)
	writeCfgFile(t, dir, "warren.yaml", simpleConfig(addr))
	writeCfgFile(t, dir, "defs.yaml", defs)
	return startCfgBrokerIn(t, bin, dir, addr)
}

// startCfgBrokerIn starts `warren --config dir/warren.yaml` and waits until it logs that the
// plain AMQP listener on addr accepts connections. The process runs in another directory, so that
// paths in the file must be resolved against the file's directory. At the end of the test it
// is stopped with SIGTERM and must exit with status 0; if the test failed, its log is printed.
func startCfgBrokerIn(t *testing.T, bin, dir, addr string, extraArgs ...string) *cfgBroker {
	t.Helper()
	b := &cfgBroker{t: t, bin: bin, dir: dir, addr: addr, log: newCfgLog(), exited: make(chan struct{})}
	// Brokers of tests running in parallel must not all listen on :15692.
	args := append([]string{"--config", filepath.Join(dir, "warren.yaml"), "--prometheus-listen", "127.0.0.1:0", "--management-listen", "127.0.0.1:0"}, extraArgs...)
	b.cmd = exec.Command(bin, args...)
	b.cmd.Dir = t.TempDir()
	b.cmd.Stderr = b.log
	b.cmd.Stdout = b.log
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		b.waitErr = b.cmd.Wait()
		close(b.exited)
	}()
	t.Cleanup(b.stop)

	// Ready once it logs that it listens on addr (the JSON line has "addr":"…").
	deadline := time.Now().Add(procTimeout)
	for {
		if _, ok := b.log.waitFor(0, 100*time.Millisecond, func(s string) bool {
			return strings.Contains(s, readyLine) && strings.Contains(s, addr)
		}); ok {
			return b
		}
		if !b.alive() {
			t.Fatalf("warren --config %s exited (%s) before logging %q for %s:\n%s", b.configPath(), b.exitStatus(), readyLine, addr, b.log.dump())
		}
		if time.Now().After(deadline) {
			t.Fatalf("warren --config %s did not log %q for %s within %v:\n%s", b.configPath(), readyLine, addr, procTimeout, b.log.dump())
		}
	}
}

// probeAMQP sends the AMQP protocol header to addr and expects connection.start back.
func probeAMQP(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, protocolHeader); err != nil {
		return err
	}
	var hdr [11]byte // frame type, channel, size, class id, method id
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return fmt.Errorf("read connection.start: %w", err)
	}
	if hdr[0] != frameMethod || binary.BigEndian.Uint16(hdr[7:]) != 10 || binary.BigEndian.Uint16(hdr[9:]) != 10 {
		return fmt.Errorf("first frame % x is not connection.start", hdr)
	}
	return nil
}

// url is an AMQP URL for user:password on vhost at the plain listener.
func (b *cfgBroker) url(user, password, vhost string) string {
	return "amqp://" + url.UserPassword(user, password).String() + "@" + b.addr + "/" + url.PathEscape(vhost)
}

// guestURL is guest/guest on vhost "/".
func (b *cfgBroker) guestURL() string { return b.url("guest", "guest", "/") }

// dial connects as user to vhost and closes the connection when the test ends.
func (b *cfgBroker) dial(user, password, vhost string) *amqp.Connection {
	b.t.Helper()
	return dialConfig(b.t, b.url(user, password, vhost), amqp.Config{})
}

func (b *cfgBroker) configPath() string { return filepath.Join(b.dir, "warren.yaml") }

// writeDefs replaces defs.yaml.
func (b *cfgBroker) writeDefs(text string) { b.t.Helper(); writeCfgFile(b.t, b.dir, "defs.yaml", text) }

func (b *cfgBroker) alive() bool {
	select {
	case <-b.exited:
		return false
	default:
		return true
	}
}

func (b *cfgBroker) exitStatus() string {
	select {
	case <-b.exited:
		if b.waitErr == nil {
			return "exit status 0"
		}
		return b.waitErr.Error()
	default:
		return "running"
	}
}

// signal sends sig to the broker, which must still be running.
func (b *cfgBroker) signal(sig os.Signal) {
	b.t.Helper()
	if !b.alive() {
		b.t.Fatalf("the broker exited (%s) before %v", b.exitStatus(), sig)
	}
	if err := b.cmd.Process.Signal(sig); err != nil {
		b.t.Fatalf("%v to the broker: %v", sig, err)
	}
}

// terminate stops the broker with SIGTERM before the end of the test; it must exit with
// status 0.
func (b *cfgBroker) terminate() {
	b.t.Helper()
	b.signal(syscall.SIGTERM)
	b.terminated = true
	select {
	case <-b.exited:
	case <-time.After(procTimeout):
		b.t.Fatalf("the broker is still running %v after SIGTERM", procTimeout)
	}
	if b.waitErr != nil {
		b.t.Errorf("the broker exited with %v after SIGTERM, want status 0", b.waitErr)
	}
}

// stop is the cleanup: SIGTERM, a clean exit within procTimeout, the log on failure.
func (b *cfgBroker) stop() {
	t := b.t
	if b.alive() {
		_ = b.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-b.exited:
			if b.waitErr != nil {
				t.Errorf("the broker exited with %v after SIGTERM, want status 0", b.waitErr)
			}
		case <-time.After(procTimeout):
			_ = b.cmd.Process.Kill()
			<-b.exited
			t.Errorf("the broker was still running %v after SIGTERM; killed", procTimeout)
		}
	} else if !t.Failed() && !b.terminated {
		t.Errorf("the broker exited by itself during the test (%s)", b.exitStatus())
	}
	if t.Failed() {
		t.Logf("log of warren --config %s (%s):\n%s", b.configPath(), b.exitStatus(), b.log.dump())
	}
}

// cfgLog is a broker's stderr (and stdout): every line, kept for searching and for failure
// reports, with a notification on each new line.
type cfgLog struct {
	mu      sync.Mutex
	partial []byte
	lines   []string
	changed chan struct{} // closed and replaced on each new line
}

func newCfgLog() *cfgLog { return &cfgLog{changed: make(chan struct{})} }

func (l *cfgLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, b...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.lines = append(l.lines, string(l.partial[:i]))
		l.partial = l.partial[i+1:]
		close(l.changed)
		l.changed = make(chan struct{})
	}
	return len(b), nil
}

// mark is the number of lines so far: waitFor(mark, …) looks only at lines logged after it.
func (l *cfgLog) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

// waitFor waits up to d for a line after mark whose text (see logText) matches, and returns it.
func (l *cfgLog) waitFor(after int, d time.Duration, match func(string) bool) (string, bool) {
	deadline := time.After(d)
	for {
		l.mu.Lock()
		for ; after < len(l.lines); after++ {
			if s := logText(l.lines[after]); match(s) {
				l.mu.Unlock()
				return s, true
			}
		}
		changed := l.changed
		l.mu.Unlock()
		select {
		case <-changed:
		case <-deadline:
			return "", false
		}
	}
}

// dump is the whole log, for failure reports (the last 200 lines of a long one).
func (l *cfgLog) dump() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := l.lines
	if len(lines) > 200 {
		lines = lines[len(lines)-200:]
	}
	out := strings.Join(lines, "\n")
	if len(l.partial) > 0 {
		out += "\n" + string(l.partial)
	}
	if out == "" {
		return "(nothing logged)"
	}
	return out
}

// logText makes a log line searchable: a JSON log record becomes its level, message and every
// other field as "key=value" with strings unquoted (so that quotes inside an error message
// are plain quotes again); any other line is returned as it is.
func logText(line string) string {
	var rec map[string]any
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		return line
	}
	keys := make([]string, 0, len(rec))
	for k := range rec {
		if k != "level" && k != "message" && k != "time" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := []string{fmt.Sprint(rec["level"]), fmt.Sprint(rec["message"])}
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%v", k, rec[k]))
	}
	return strings.Join(parts, " ")
}

// cmdResult is the outcome of one warren subcommand.
type cmdResult struct {
	args           []string
	stdout, stderr string
	code           int // exit status; -1 if it did not exit normally
}

func (r cmdResult) String() string {
	return fmt.Sprintf("warren %s: exit status %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// runWarren runs the binary with args in dir (a temporary directory when empty), stdin as its
// input, and returns what it printed and its exit status. It fails the test if the command
// cannot be started or does not finish within cfgCommandTimeout.
func runWarren(t testing.TB, bin, dir, stdin string, args ...string) cmdResult {
	t.Helper()
	return runWarrenWithin(t, cfgCommandTimeout, bin, dir, stdin, args...)
}

// runWarrenWithin is runWarren with another time limit.
func runWarrenWithin(t testing.TB, limit time.Duration, bin, dir, stdin string, args ...string) cmdResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	if dir == "" {
		dir = t.TempDir()
	}
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := cmdResult{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		t.Fatalf("warren %s did not finish within %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), limit, r.stdout, r.stderr)
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	default:
		t.Fatalf("run warren %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// reload runs `warren config reload --config <warren.yaml>`.
func (b *cfgBroker) reload() cmdResult {
	b.t.Helper()
	return runWarren(b.t, b.bin, "", "", "config", "reload", "--config", b.configPath())
}

// mustReload reloads with the command, which must succeed.
func (b *cfgBroker) mustReload() {
	b.t.Helper()
	if r := b.reload(); r.code != 0 {
		b.t.Fatalf("reload rejected, want it accepted:\n%v", r)
	}
}

// export runs `warren definitions export --config <warren.yaml>`, which must succeed, and
// parses its YAML.
func (b *cfgBroker) export() (exportedDefs, string) {
	b.t.Helper()
	return b.exportWith("--config", b.configPath())
}

// exportWith runs `warren definitions export` with the given way to find the broker.
func (b *cfgBroker) exportWith(args ...string) (exportedDefs, string) {
	b.t.Helper()
	r := runWarren(b.t, b.bin, "", "", append([]string{"definitions", "export"}, args...)...)
	if r.code != 0 {
		b.t.Fatalf("definitions export failed:\n%v", r)
	}
	var d exportedDefs
	if err := yaml.Unmarshal([]byte(r.stdout), &d); err != nil {
		b.t.Fatalf("definitions export printed something that is not definitions YAML: %v\n%s", err, r.stdout)
	}
	return d, r.stdout
}

// exportedDefs is the part of an exported definitions file the tests look at; other keys are
// ignored.
type exportedDefs struct {
	Vhosts []struct {
		Name string `yaml:"name"`
	} `yaml:"vhosts"`
	Users []struct {
		Name string `yaml:"name"`
	} `yaml:"users"`
	Exchanges []struct {
		Name    string `yaml:"name"`
		Vhost   string `yaml:"vhost"`
		Type    string `yaml:"type"`
		Durable bool   `yaml:"durable"`
	} `yaml:"exchanges"`
	Queues []struct {
		Name      string         `yaml:"name"`
		Vhost     string         `yaml:"vhost"`
		Durable   bool           `yaml:"durable"`
		Arguments map[string]any `yaml:"arguments"`
	} `yaml:"queues"`
	Bindings []struct {
		Vhost           string `yaml:"vhost"`
		Source          string `yaml:"source"`
		Destination     string `yaml:"destination"`
		DestinationType string `yaml:"destination-type"`
		RoutingKey      string `yaml:"routing-key"`
	} `yaml:"bindings"`
	Policies []struct {
		Name       string         `yaml:"name"`
		Vhost      string         `yaml:"vhost"`
		Pattern    string         `yaml:"pattern"`
		Definition map[string]any `yaml:"definition"`
	} `yaml:"policies"`
}

func vhostOr(v string) string {
	if v == "" {
		return "/"
	}
	return v
}

// bindings lists the bindings as "vhost source -> destination-type destination key", sorted.
func (d exportedDefs) bindings() []string {
	var out []string
	for _, b := range d.Bindings {
		dt := b.DestinationType
		if dt == "" {
			dt = "queue"
		}
		out = append(out, fmt.Sprintf("%s %s -> %s %s %q", vhostOr(b.Vhost), b.Source, dt, b.Destination, b.RoutingKey))
	}
	sort.Strings(out)
	return out
}

// queues lists the queues as "vhost name", sorted.
func (d exportedDefs) queues() []string {
	var out []string
	for _, q := range d.Queues {
		out = append(out, vhostOr(q.Vhost)+" "+q.Name)
	}
	sort.Strings(out)
	return out
}

// exchanges lists the exchanges as "vhost name type", sorted, without the predeclared amq.*
// ones and the default exchange, which an export may or may not list.
func (d exportedDefs) exchanges() []string {
	var out []string
	for _, x := range d.Exchanges {
		if x.Name == "" || strings.HasPrefix(x.Name, "amq.") {
			continue
		}
		out = append(out, vhostOr(x.Vhost)+" "+x.Name+" "+x.Type)
	}
	sort.Strings(out)
	return out
}

// wantLine asserts that text has a line matching the regular expression re, and returns the
// submatches of the first.
func wantLine(t testing.TB, what, text, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	for _, l := range strings.Split(text, "\n") {
		if m := rx.FindStringSubmatch(l); m != nil {
			return m
		}
	}
	t.Errorf("%s has no line matching %s; it is:\n%s", what, re, text)
	return nil
}

// wantChannelClosedBy runs op on a fresh channel of conn and expects the channel to be closed
// with exactly code and text (RabbitMQ's): op's own error when the method has a reply,
// otherwise the channel's close notification (a publish).
func wantChannelClosedBy(t testing.TB, conn *amqp.Connection, what string, code int, text string, op func(*amqp.Channel) error) {
	t.Helper()
	ch := channel(t, conn)
	closes := notifyClose(ch)
	err := op(ch)
	var aerr *amqp.Error
	if !errors.As(err, &aerr) {
		// No reply to fail (a publish), or the library's view of the closed channel (a
		// confirm that never came): the server's reason is in the close notification.
		select {
		case cerr, ok := <-closes:
			if ok && cerr != nil {
				err = cerr
			}
		case <-time.After(timeout):
		}
	}
	if err == nil {
		t.Errorf("%s: allowed, want %d %q", what, code, text)
		return
	}
	if !errors.As(err, &aerr) {
		t.Errorf("%s: error %v (%T), want *amqp.Error %d %q", what, err, err, code, text)
		return
	}
	if aerr.Code != code || aerr.Reason != text {
		t.Errorf("%s: %d %q, want %d %q", what, aerr.Code, aerr.Reason, code, text)
	}
}

// wantChannelOK runs op on a fresh channel of conn and expects it to succeed, the channel
// still open after a round trip.
func wantChannelOK(t testing.TB, conn *amqp.Connection, what string, op func(*amqp.Channel) error) {
	t.Helper()
	ch := channel(t, conn)
	if err := op(ch); err != nil {
		t.Errorf("%s: %v, want it allowed", what, err)
		return
	}
	// A round trip: a publish refused asynchronously would have closed the channel by now.
	if err := ch.Qos(0, 0, false); err != nil {
		t.Errorf("%s: the channel was closed after it: %v", what, err)
	}
	_ = ch.Close()
}

// confirmPublish publishes body on ch (in confirm mode) and waits for the ack.
func confirmPublish(t testing.TB, ch *amqp.Channel, exchange, key string, msg amqp.Publishing) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, false, false, msg)
	if err != nil {
		t.Fatalf("publish to %q with key %q: %v", exchange, key, err)
	}
	acked, err := dc.WaitContext(ctx)
	if err != nil {
		t.Fatalf("confirm of the publish to %q with key %q: %v", exchange, key, err)
	}
	if !acked {
		t.Fatalf("publish to %q with key %q was nacked", exchange, key)
	}
}

// passiveQueue reports whether a passive declare finds the queue; any error other than 404
// fails the test.
func passiveQueue(t testing.TB, conn *amqp.Connection, name string) (messages int, ok bool) {
	t.Helper()
	ch := channel(t, conn)
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(name, false, false, false, false, nil)
	var aerr *amqp.Error
	switch {
	case err == nil:
		return q.Messages, true
	case errors.As(err, &aerr) && aerr.Code == amqp.NotFound:
		return 0, false
	default:
		t.Fatalf("passive declare of queue %s: %v", name, err)
		return 0, false
	}
}
