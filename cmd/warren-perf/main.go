// Command warren-perf is a load generator for AMQP 0-9-1 brokers in the spirit of
// RabbitMQ's PerfTest: producers and consumers on their own connections, publisher
// confirms with an in-flight window, prefetch and multiple acks, a rate limit, message
// counts for backlog fills and drains. Every second it prints publish, confirm and consume
// rates; at the end, throughput, end-to-end latency percentiles (producers stamp the send
// time into the first 8 bytes of the body) and, with --broker-pid, the broker's CPU time
// and memory.
//
//	warren-perf --url amqp://guest:guest@127.0.0.1:5672/ --producers 4 --consumers 0 \
//	    --size 1024 --persistent --confirm 64 --duration 20s --broker-pid $(pgrep -n warren)
//
// --idle-connections N holds N more connections open and reports what they cost the
// broker; --topic-bindings N routes through a topic exchange with N bindings.
//
//	warren-perf table SUMMARY.json...
//
// prints --json summaries as one markdown table (scripts/perf-table uses it).
//
//	warren-perf delayed --messages 1000000 --spread 60s --broker-pid $(pgrep -n warren)
//
// publishes delayed messages to an x-delayed-message exchange and reports how late they were
// delivered and the broker's peak memory (delayed.go).
//
// See docs/performance.md for the measurements made with it, and docs/perf-table.md for
// the table of issue 6.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
)

var logOut io.Writer = os.Stderr

func logf(format string, args ...any) {
	fmt.Fprintf(logOut, "warren-perf: "+format+"\n", args...)
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "table" {
		os.Exit(tableMain(os.Args[2:], os.Stdout, os.Stderr))
	}
	if len(os.Args) > 1 && os.Args[1] == "delayed" {
		os.Exit(delayedMain(os.Args[2:], os.Stdout, os.Stderr))
	}
	raiseFDLimit()
	c, err := parseConfig(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "warren-perf:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	progress := io.Writer(os.Stdout)
	if c.JSON {
		progress = os.Stderr
	}
	s, err := run(ctx, c, progress)
	if s == nil && err != nil && c.JSON {
		s = setupFailed(c) // --json prints one object, whatever happens
	}
	if s != nil {
		if err != nil {
			s.Error = err.Error()
		}
		if c.JSON {
			if err := s.writeJSON(os.Stdout); err != nil {
				fmt.Fprintln(os.Stderr, "warren-perf:", err)
			}
		} else {
			s.writeText(os.Stdout)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "warren-perf:", err)
		os.Exit(1)
	}
}

// run sets up the topology, the idle connections, the consumers and then the producers,
// runs them until the duration, the message limits or ctx end the run, and returns the
// summary.
func run(ctx context.Context, c *config, progress io.Writer) (s *summary, err error) {
	workers := c.Producers + c.Consumers
	if c.IdleConnections > 0 {
		if err := checkFDs(c); err != nil {
			return nil, err
		}
	}
	var hwmReset bool
	if c.ResetHWM {
		if err := resetHWM(strconv.Itoa(c.BrokerPID)); err != nil {
			logf("--reset-hwm: %v (VmHWM stays the process's lifetime peak)", err)
		} else {
			hwmReset = true
		}
	}
	var bindTime time.Duration
	if c.DeleteAfter && workers > 0 {
		// Also when the run fails, so that a queue left full does not weigh on the next run.
		defer func() {
			if derr := deleteQueues(c); derr != nil && err == nil {
				err = derr
			}
		}()
	}
	if !c.NoDeclare && workers > 0 {
		if bindTime, err = declare(c); err != nil {
			return nil, err
		}
	}
	var idle *idleSet
	if c.IdleConnections > 0 {
		idle = openIdle(ctx, c, progress, c.Interval)
		defer idle.close(c.IdleConcurrency)
	}
	var consumers []*consumer
	var producers []*producer
	defer func() {
		for _, p := range producers {
			p.conn.Close()
		}
		for _, w := range consumers {
			w.conn.Close()
		}
	}()
	stats := make([]counters, workers)
	for i := range c.Consumers {
		w, err := newConsumer(c, i, &stats[c.Producers+i])
		if err != nil {
			return nil, err
		}
		consumers = append(consumers, w)
	}
	for i := range c.Producers {
		p, err := newProducer(c, i, &stats[i])
		if err != nil {
			return nil, err
		}
		producers = append(producers, p)
	}

	broker := newProcWatch(c.BrokerPID)
	client := newProcWatch(os.Getpid())
	start := time.Now()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if c.Duration > 0 {
		var cancelT context.CancelFunc
		runCtx, cancelT = context.WithTimeout(runCtx, c.Duration)
		defer cancelT()
	}

	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for _, w := range consumers {
		wg.Go(func() { errs <- w.run(runCtx) })
	}
	for _, p := range producers {
		wg.Go(func() { errs <- p.run(runCtx) })
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		if workers == 0 && idle.sum.Opened > 0 {
			<-runCtx.Done() // hold the idle connections for --duration or until SIGINT
		}
		close(done)
	}()

	rep := &reporter{c: c, out: progress, stats: stats, consumers: consumers, broker: broker, start: start}
	every := c.Interval
	if every == 0 {
		every = time.Second // still sample the broker's memory
	}
	tick := time.NewTicker(every)
	var runErr error
loop:
	for {
		select {
		case <-tick.C:
			rep.tick(c.Interval > 0)
		case err := <-errs:
			if err != nil && runErr == nil {
				runErr = err
				logf("%v", err)
				cancel() // one failed worker ends the run: its figures would be wrong
			}
		case <-done:
			break loop
		}
	}
	tick.Stop()
	for len(errs) > 0 {
		if err := <-errs; err != nil && runErr == nil {
			runErr = err
		}
	}
	end := time.Now()
	s = rep.finish(end, client)
	s.TopicBindings = c.TopicBindings
	s.BindTime = bindTime.Seconds()
	if s.Broker != nil {
		s.Broker.HWMReset = hwmReset
	}
	if idle != nil {
		s.Idle = idle.finish()
		if err := idle.err(); err != nil && runErr == nil {
			runErr = err
		}
	}
	return s, runErr
}

// procWatch follows one process's CPU time and resident memory over the run.
type procWatch struct {
	pid      string
	startCPU time.Duration
	lastCPU  time.Duration
	lastAt   time.Time
	peakRSS  int64
	err      error
	// startWrite is the process's write_bytes at the start; writeErr is why it is not
	// known (no right to read /proc/PID/io), which leaves the disk figure out of the summary.
	startWrite int64
	writeErr   error
}

func newProcWatch(pid int) *procWatch {
	if pid == 0 {
		return nil
	}
	w := &procWatch{pid: strconv.Itoa(pid), lastAt: time.Now()}
	w.startCPU, w.err = procCPU(w.pid)
	w.lastCPU = w.startCPU
	if w.err != nil {
		logf("--broker-pid %d: %v", pid, w.err)
	}
	if w.startWrite, w.writeErr = procWriteBytes(w.pid); w.writeErr != nil && w.err == nil {
		logf("--broker-pid %d: no disk write figure: %v", pid, w.writeErr)
	}
	w.sample()
	return w
}

// sample returns the CPU used since the last sample as a fraction of one core, and the RSS.
func (w *procWatch) sample() (cores float64, rss int64) {
	if w == nil || w.err != nil {
		return 0, 0
	}
	cpu, err := procCPU(w.pid)
	m, err2 := procMem(w.pid)
	if err != nil || err2 != nil {
		w.err = errors.Join(err, err2)
		logf("process %s: %v", w.pid, w.err)
		return 0, 0
	}
	now := time.Now()
	if dt := now.Sub(w.lastAt); dt > 0 {
		cores = float64(cpu-w.lastCPU) / float64(dt)
	}
	w.lastCPU, w.lastAt = cpu, now
	w.peakRSS = max(w.peakRSS, m.RSS)
	return cores, m.RSS
}
