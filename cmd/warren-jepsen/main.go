// Command warren-jepsen is a Jepsen-style fault-injection harness for Warren, all on
// 127.0.0.1 with real processes: it starts N brokers (a cluster behind TCP proxies, or one
// broker), runs publishers with confirms and consumers with manual acks on different nodes,
// lets a seeded nemesis kill -9 and restart, pause (SIGSTOP/SIGCONT) and partition nodes and
// take them out of the queue's members and back (RabbitMQ's replicas/delete and add), then heals everything, drains the queue and checks that every confirmed message was
// delivered, nothing was delivered that was never published, and every node agrees on the
// final state. It exits 1 on a violation, 2 when the run itself could not be made.
// docs/cluster.md, "Fault testing", tells how to run it.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// config is the command line.
type config struct {
	warren, work, out, history, queue string
	nodes, faults                     int
	seed                              int64
	kinds                             []string
	publishers, consumers             int
	rate, window, consumeRate         int
	holdMin, holdMax, gapMin, gapMax  time.Duration
	leaderBias                        float64
	settle                            time.Duration
	verbose                           bool
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("warren-jepsen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.warren, "warren", "", "the warren binary (default: go build ./cmd/warren into the work dir; run from the repository)")
	fs.StringVar(&c.work, "work", "", "directory for the nodes' data dirs and logs (default: a temporary one, removed after a passing run)")
	fs.StringVar(&c.out, "out", "", "write the result (faults, counts, violations, node states) as JSON to this file")
	fs.StringVar(&c.history, "history", "", "write every client operation (publish, ack, nack, return, deliver) as JSON to this file")
	fs.StringVar(&c.queue, "queue", "jepsen", "the queue: quorum in a cluster, durable classic on one node")
	fs.IntVar(&c.nodes, "nodes", 3, "brokers to run; 1 is a single broker without cluster settings")
	fs.IntVar(&c.faults, "faults", 10, "faults to inject")
	fs.Int64Var(&c.seed, "seed", 0, "the nemesis's random seed (default: from the clock; printed)")
	kinds := fs.String("kinds", "", "faults to draw from: kill,pause,partition,member (default: all; kill and pause on one node)")
	fs.IntVar(&c.publishers, "publishers", 3, "publishers (with confirms), on nodes 1, 2, ... in turn")
	fs.IntVar(&c.consumers, "consumers", 3, "consumers (manual acks), each on the node after its publisher's")
	fs.IntVar(&c.rate, "rate", 50, "messages per second per publisher")
	fs.IntVar(&c.consumeRate, "consume-rate", 30, "messages per second per consumer (0: as fast as they come); below the publishers' total rate a backlog builds up, so faults hit a broker with messages stored")
	fs.IntVar(&c.window, "window", 16, "unconfirmed messages a publisher may have outstanding")
	fs.DurationVar(&c.holdMin, "hold-min", time.Second, "shortest fault (a pause, a partition, the time a killed node stays down)")
	fs.DurationVar(&c.holdMax, "hold-max", 4*time.Second, "longest fault")
	fs.DurationVar(&c.gapMin, "gap-min", 500*time.Millisecond, "shortest calm between two faults")
	fs.DurationVar(&c.gapMax, "gap-max", 2*time.Second, "longest calm between two faults")
	fs.Float64Var(&c.leaderBias, "leader-bias", 0.6, "chance that a fault hits the leader (queue leader, else metadata leader) rather than a random node")
	fs.DurationVar(&c.settle, "settle-timeout", 90*time.Second, "how long the healed cluster may take to settle, drain and agree")
	fs.BoolVar(&c.verbose, "v", false, "log every reconnection and proxy refusal")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if c.nodes < 1 || c.publishers < 1 || c.consumers < 1 || c.rate < 1 || c.window < 1 || c.faults < 0 || c.consumeRate < 0 {
		return c, fmt.Errorf("--nodes, --publishers, --consumers, --rate and --window must be at least 1, --faults and --consume-rate at least 0")
	}
	if c.holdMax < c.holdMin || c.gapMax < c.gapMin {
		return c, fmt.Errorf("--hold-max and --gap-max must not be below --hold-min and --gap-min")
	}
	if c.seed == 0 {
		c.seed = time.Now().UnixNano()
	}
	all := []string{faultKill, faultPause}
	if c.nodes > 1 {
		all = append(all, faultPartition, faultMember)
	}
	if *kinds == "" {
		c.kinds = all
	} else {
		for _, k := range strings.Split(*kinds, ",") {
			k = strings.TrimSpace(k)
			switch {
			case (k == faultPartition || k == faultMember) && c.nodes == 1:
				return c, fmt.Errorf("--kinds: %s needs --nodes > 1", k)
			case k == faultKill || k == faultPause || k == faultPartition || k == faultMember:
				c.kinds = append(c.kinds, k)
			default:
				return c, fmt.Errorf("--kinds: unknown fault %q (kill, pause, partition, member)", k)
			}
		}
	}
	return c, nil
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the command; its result is the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	c, err := parseFlags(args, stderr)
	if err != nil {
		if err != flag.ErrHelp {
			fmt.Fprintln(stderr, "warren-jepsen:", err)
		}
		return 2
	}
	level := zerolog.InfoLevel
	if c.verbose {
		level = zerolog.DebugLevel
	}
	log := zerolog.New(zerolog.ConsoleWriter{Out: stderr, TimeFormat: "15:04:05"}).Level(level).With().Timestamp().Logger()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	work, keep := c.work, c.work != ""
	if work == "" {
		if work, err = os.MkdirTemp("", "warren-jepsen-"); err != nil {
			log.Error().Err(err).Msg("work dir")
			return 2
		}
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		log.Error().Err(err).Msg("work dir")
		return 2
	}
	rep, err := execute(ctx, c, work, log)
	if err != nil {
		log.Error().Err(err).Str("work", work).Msg("the run could not be made")
		return 2
	}
	rep.print(stdout)
	if err := rep.write(c); err != nil {
		log.Error().Err(err).Msg("writing the result")
		return 2
	}
	if !rep.OK {
		fmt.Fprintf(stdout, "node logs and data dirs: %s\n", work)
		return 1
	}
	if !keep {
		_ = os.RemoveAll(work)
	}
	return 0
}

// buildWarren compiles ./cmd/warren into dir.
func buildWarren(dir string) (string, error) {
	bin := filepath.Join(dir, "warren")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/warrenmq/warren/cmd/warren").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/warren: %w\n%s", err, out)
	}
	return bin, nil
}

// execute makes the run: start, workload under the nemesis, heal, drain, check.
func execute(ctx context.Context, c config, work string, log zerolog.Logger) (*Report, error) {
	bin := c.warren
	if bin == "" {
		var err error
		if bin, err = buildWarren(work); err != nil {
			return nil, err
		}
	}
	ns, err := newNodes(bin, work, c.nodes, log)
	if err != nil {
		return nil, err
	}
	defer ns.stopAll()
	begin := time.Now()
	for _, n := range ns.list {
		if err := ns.start(ctx, n); err != nil {
			return nil, err
		}
	}
	if err := ns.settle(ctx, c.settle); err != nil {
		return nil, err
	}
	log.Info().Int("nodes", c.nodes).Int64("seed", c.seed).Str("work", work).Msg("brokers up; starting the workload")

	rep := &Report{Seed: c.seed, Nodes: c.nodes, Queue: c.queue, QueueType: "classic", FaultsByKind: map[string]int{}}
	if ns.clustered() {
		rep.QueueType = "quorum"
	}
	h := newHistory(begin)
	w := &workload{ns: ns, h: h, log: log, queue: c.queue, clustered: ns.clustered(), rate: c.rate, window: c.window, consumeRate: c.consumeRate, prefetch: 32}
	stopWork := w.run(c.publishers, c.consumers)
	if err := waitConfirmed(ctx, h, 30*time.Second); err != nil {
		stopWork()
		return nil, err
	}

	m := &nemesis{ns: ns, rng: newRand(c.seed), kinds: c.kinds, queue: c.queue, holdMin: c.holdMin, holdMax: c.holdMax,
		gapMin: c.gapMin, gapMax: c.gapMax, leaderBias: c.leaderBias, start: begin, log: log}
	faults, nerr := m.run(ctx, c.faults)
	if ctx.Err() != nil {
		stopWork()
		return nil, fmt.Errorf("interrupted after %d faults: %w", len(faults), ctx.Err())
	}
	rep.Faults = faults
	for _, f := range faults {
		rep.FaultsByKind[f.Kind]++
	}
	if nerr != nil {
		rep.Problems = append(rep.Problems, nerr.Error())
	}
	if ns.net != nil {
		rep.Refused = ns.net.refusedCount()
	}

	log.Info().Msg("faults done; healing")
	final := context.WithoutCancel(ctx)
	if err := ns.heal(final); err != nil {
		rep.Problems = append(rep.Problems, err.Error())
	} else if err := ns.settle(final, c.settle); err != nil {
		rep.Problems = append(rep.Problems, err.Error())
	}
	stopWork()
	log.Info().Msg("workload stopped; draining")
	if err := w.drain(final, c.settle); err != nil {
		rep.Problems = append(rep.Problems, err.Error())
	}
	disagree, states := ns.agree(final, c.queue, 30*time.Second)
	rep.Disagreements, rep.States = disagree, states
	rep.Crashes = ns.crashList()
	rep.Result = Check(h.Events())
	rep.DurationMS = time.Since(begin).Milliseconds()
	rep.events = h.Events()
	rep.OK = rep.Result.OK() && len(rep.Disagreements) == 0 && len(rep.Crashes) == 0 && len(rep.Problems) == 0
	return rep, nil
}

// waitConfirmed waits for the workload's first confirm (the brokers take messages).
func waitConfirmed(ctx context.Context, h *History, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		for _, e := range h.Events() {
			if e.Op == opAck {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no publish confirmed within %s of the start", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
