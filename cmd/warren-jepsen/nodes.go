package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// node is one warren process of the run, with its fixed addresses (a restart reuses them).
type node struct {
	name                string
	amqp, mgmt, prom    string
	clusterListen, peer string // the real cluster port; the address the peers dial (its proxy)
	dataDir, logPath    string
	mu                  sync.Mutex
	cmd                 *exec.Cmd
	exited              chan struct{}
	killed, paused      bool
}

// nodes is the run's brokers and, in cluster mode, the proxies between them.
type nodes struct {
	bin  string
	list []*node
	net  *network // nil for a single node
	log  zerolog.Logger
	http *http.Client

	mu      sync.Mutex
	crashes []string // nodes that exited without being killed
}

// newNodes lays out count nodes under work (data dirs, logs, ports) and, for a cluster, the
// proxies in front of their cluster ports. Nothing runs yet.
func newNodes(bin, work string, count int, log zerolog.Logger) (*nodes, error) {
	ns := &nodes{bin: bin, log: log, http: &http.Client{Timeout: 5 * time.Second}}
	if count > 1 {
		ns.net = newNetwork(log)
	}
	// Every port is held until all are picked, so that no two are the same.
	var held []net.Listener
	defer func() {
		for _, ln := range held {
			_ = ln.Close()
		}
	}()
	for i := 0; i < count; i++ {
		n := &node{name: fmt.Sprintf("n%d", i+1), dataDir: filepath.Join(work, fmt.Sprintf("n%d", i+1))}
		n.logPath = n.dataDir + ".log"
		for _, p := range []*string{&n.amqp, &n.mgmt, &n.prom, &n.clusterListen} {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return nil, fmt.Errorf("free port: %w", err)
			}
			held = append(held, ln)
			*p = ln.Addr().String()
		}
		if ns.net != nil {
			addr, err := ns.net.listen(n.name, n.clusterListen)
			if err != nil {
				return nil, err
			}
			n.peer = addr
		}
		ns.list = append(ns.list, n)
	}
	return ns, nil
}

func (ns *nodes) clustered() bool { return ns.net != nil }

// args are n's command line.
func (ns *nodes) args(n *node) []string {
	a := []string{"--listen", n.amqp, "--management-listen", n.mgmt, "--prometheus-listen", n.prom,
		"--data-dir", n.dataDir, "--log-level", "info", "--log-format", "json"}
	if ns.clustered() {
		var peers []string
		for _, p := range ns.list {
			peers = append(peers, p.name+"@"+p.peer)
		}
		a = append(a, "--node-name", n.name, "--cluster-listen", n.clusterListen, "--cluster-peers", strings.Join(peers, ","))
	}
	return a
}

// start runs n (its log appended to n.logPath) and waits until it serves AMQP and its API.
func (ns *nodes) start(ctx context.Context, n *node) error {
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("%s: log file: %w", n.name, err)
	}
	cmd := exec.Command(ns.bin, ns.args(n)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("%s: start: %w", n.name, err)
	}
	exited := make(chan struct{})
	n.mu.Lock()
	n.cmd, n.exited, n.killed, n.paused = cmd, exited, false, false
	n.mu.Unlock()
	go func() {
		err := cmd.Wait()
		_ = logf.Close()
		n.mu.Lock()
		expected := n.killed
		n.mu.Unlock()
		close(exited)
		if !expected {
			ns.mu.Lock()
			ns.crashes = append(ns.crashes, fmt.Sprintf("%s exited on its own: %v (see %s)", n.name, err, n.logPath))
			ns.mu.Unlock()
			ns.log.Error().Str("node", n.name).Err(err).Msg("node exited on its own")
		}
	}()
	ns.log.Debug().Str("node", n.name).Int("pid", cmd.Process.Pid).Msg("node started")
	return ns.waitReady(ctx, n, 60*time.Second)
}

// waitReady waits until n accepts AMQP connections and answers its management API.
func (ns *nodes) waitReady(ctx context.Context, n *node, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		n.mu.Lock()
		exited := n.exited
		n.mu.Unlock()
		select {
		case <-exited:
			return fmt.Errorf("%s exited while starting (see %s): %s", n.name, n.logPath, logTail(n.logPath))
		default:
		}
		if c, err := net.DialTimeout("tcp", n.amqp, time.Second); err == nil {
			_ = c.Close()
			var v map[string]any
			if err := ns.getJSON(n, "/api/overview", &v); err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %s (see %s)", n.name, timeout, n.logPath)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// kill sends SIGKILL to n and waits until it is gone.
func (ns *nodes) kill(n *node) error {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.killed = true
	n.mu.Unlock()
	if cmd == nil {
		return nil
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("%s: kill -9: %w", n.name, err)
	}
	<-exited
	n.mu.Lock()
	n.paused = false
	n.mu.Unlock()
	return nil
}

// signal sends SIGSTOP (pause) or SIGCONT to n.
func (ns *nodes) signal(n *node, sig syscall.Signal) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.killed {
		return nil
	}
	if err := n.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("%s: %v: %w", n.name, sig, err)
	}
	n.paused = sig == syscall.SIGSTOP
	return nil
}

// down says whether n is not running (killed, crashed or never started).
func (n *node) down() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.exited == nil {
		return true
	}
	select {
	case <-n.exited:
		return true
	default:
		return false
	}
}

func (n *node) isPaused() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.paused
}

// heal undoes every fault: the network heals, paused nodes continue, nodes that are down
// start again.
func (ns *nodes) heal(ctx context.Context) error {
	if ns.net != nil {
		ns.net.heal()
	}
	for _, n := range ns.list {
		if n.isPaused() {
			if err := ns.signal(n, syscall.SIGCONT); err != nil {
				return err
			}
		}
	}
	for _, n := range ns.list {
		if n.down() {
			if err := ns.start(ctx, n); err != nil {
				return err
			}
		}
	}
	return nil
}

// stopAll kills every node and the proxies (the end of a run).
func (ns *nodes) stopAll() {
	for _, n := range ns.list {
		if !n.down() {
			_ = ns.kill(n)
		}
	}
	if ns.net != nil {
		ns.net.close()
	}
}

// crashList is the nodes that exited without being killed.
func (ns *nodes) crashList() []string {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return append([]string(nil), ns.crashes...)
}

// getJSON reads path from n's management API as guest.
func (ns *nodes) getJSON(n *node, path string, v any) error {
	req, err := http.NewRequest("GET", "http://"+n.mgmt+path, nil)
	if err != nil {
		return fmt.Errorf("%s %s: %w", n.name, path, err)
	}
	req.SetBasicAuth("guest", "guest")
	resp, err := ns.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", n.name, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", n.name, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: HTTP %d: %s", n.name, path, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s %s: %w", n.name, path, err)
	}
	return nil
}

// send makes a request with a JSON body to n's management API as guest.
func (ns *nodes) send(n *node, method, path, body string) (int, string, error) {
	req, err := http.NewRequest(method, "http://"+n.mgmt+path, strings.NewReader(body))
	if err != nil {
		return 0, "", fmt.Errorf("%s %s: %w", n.name, path, err)
	}
	req.SetBasicAuth("guest", "guest")
	req.Header.Set("Content-Type", "application/json")
	resp, err := ns.http.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("%s %s: %w", n.name, path, err)
	}
	defer resp.Body.Close()
	text, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", fmt.Errorf("%s %s: %w", n.name, path, err)
	}
	return resp.StatusCode, strings.TrimSpace(string(text)), nil
}

// byName finds a node by its name as a broker reports it ("n2", or "rabbit@n2").
func (ns *nodes) byName(s string) *node {
	if i := strings.LastIndex(s, "@"); i >= 0 {
		s = s[i+1:]
	}
	for _, n := range ns.list {
		if n.name == s {
			return n
		}
	}
	return nil
}

// logTail is the last line of a node's log, for an error.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}
