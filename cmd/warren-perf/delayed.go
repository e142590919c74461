package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The delayed mode: warren-perf delayed publishes messages to an x-delayed-message exchange
// with due times spread uniformly over a span that starts after a lead time (so every message
// is published before it is due), consumes them, and reports how late each was delivered:
// the due time is in a header, the lateness is the receive time minus it. With --broker-pid
// it samples the broker's resident memory and reports its peak.
//
//	warren-perf delayed --url amqp://guest:guest@127.0.0.1:5672/ --messages 1000000 \
//	    --spread 60s --lead 40s --broker-pid $(pgrep -n warren)

type delayedConfig struct {
	URL         string
	Messages    int
	Spread      time.Duration
	Lead        time.Duration
	Producers   int
	Confirm     int
	Size        int
	Persistent  bool
	BrokerPID   string
	Grace       time.Duration
	JSON        bool
	Exchange    string
	Queue       string
	DurableQ    bool
	ReportEvery time.Duration
}

func parseDelayedConfig(args []string, out io.Writer) (*delayedConfig, error) {
	c := &delayedConfig{}
	fs := flag.NewFlagSet("warren-perf delayed", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.URL, "url", "amqp://guest:guest@127.0.0.1:5672/", "broker URL")
	fs.IntVar(&c.Messages, "messages", 1_000_000, "delayed messages to publish")
	fs.DurationVar(&c.Spread, "spread", 60*time.Second, "due times are spread uniformly over this span")
	fs.DurationVar(&c.Lead, "lead", 40*time.Second, "the span starts this long after the start, so every message is published before it is due")
	fs.IntVar(&c.Producers, "producers", 4, "publishing connections")
	fs.IntVar(&c.Confirm, "confirm", 256, "unconfirmed publishes in flight per producer")
	fs.IntVar(&c.Size, "size", 64, "message body size in bytes")
	fs.BoolVar(&c.Persistent, "persistent", true, "publish with delivery-mode 2 (to a durable exchange and queue)")
	fs.StringVar(&c.BrokerPID, "broker-pid", "", "sample this process's resident memory")
	fs.DurationVar(&c.Grace, "grace", 30*time.Second, "how long after the last due time to wait for deliveries")
	fs.BoolVar(&c.JSON, "json", false, "print the summary as JSON")
	fs.StringVar(&c.Exchange, "exchange", "warren-perf.delayed", "the x-delayed-message exchange (declared, deleted at the end)")
	fs.StringVar(&c.Queue, "queue", "warren-perf.delayed", "the queue bound to it (declared, deleted at the end)")
	fs.DurationVar(&c.ReportEvery, "report-every", 5*time.Second, "progress interval")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch {
	case c.Messages < 1 || c.Producers < 1 || c.Confirm < 1 || c.Size < 0:
		return nil, errors.New("--messages, --producers and --confirm must be positive")
	case c.Spread < time.Millisecond || c.Lead < 0:
		return nil, errors.New("--spread must be at least 1ms and --lead not negative")
	}
	return c, nil
}

// delayedSummary is the result of a delayed run.
type delayedSummary struct {
	Messages      int     `json:"messages"`
	Published     int64   `json:"published"`
	Received      int64   `json:"received"`
	PublishSecs   float64 `json:"publish_seconds"`
	PublishedLate int64   `json:"published_after_due"`
	Early         int64   `json:"delivered_early"`
	EarliestMs    float64 `json:"most_early_ms"`
	LateP50Ms     float64 `json:"late_p50_ms"`
	LateP99Ms     float64 `json:"late_p99_ms"`
	LateP999Ms    float64 `json:"late_p999_ms"`
	LateMaxMs     float64 `json:"late_max_ms"`
	PeakRSSMiB    float64 `json:"broker_peak_rss_mib,omitempty"`
	Error         string  `json:"error,omitempty"`
}

const dueHeader = "warren-perf-due-us"

func delayedMain(args []string, stdout, stderr io.Writer) int {
	c, err := parseDelayedConfig(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "warren-perf delayed:", err)
		return 2
	}
	s, err := runDelayed(context.Background(), c, stderr)
	if err != nil {
		s.Error = err.Error()
	}
	if c.JSON {
		b, _ := json.MarshalIndent(s, "", "  ")
		fmt.Fprintln(stdout, string(b))
	} else {
		fmt.Fprintf(stdout, "published %d in %.1fs (%d after their due time); received %d of %d; %d early (by at most %.3f ms)\n",
			s.Published, s.PublishSecs, s.PublishedLate, s.Received, s.Messages, s.Early, s.EarliestMs)
		fmt.Fprintf(stdout, "lateness: p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms\n",
			s.LateP50Ms, s.LateP99Ms, s.LateP999Ms, s.LateMaxMs)
		if s.PeakRSSMiB > 0 {
			fmt.Fprintf(stdout, "broker peak RSS: %.1f MiB\n", s.PeakRSSMiB)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "warren-perf delayed:", err)
		return 1
	}
	return 0
}

func runDelayed(ctx context.Context, c *delayedConfig, progress io.Writer) (*delayedSummary, error) {
	s := &delayedSummary{Messages: c.Messages}
	admin, err := amqp.Dial(c.URL)
	if err != nil {
		return s, fmt.Errorf("connect: %w", err)
	}
	defer admin.Close()
	ach, err := admin.Channel()
	if err != nil {
		return s, fmt.Errorf("channel: %w", err)
	}
	if err := ach.ExchangeDeclare(c.Exchange, "x-delayed-message", c.Persistent, false, false, false,
		amqp.Table{"x-delayed-type": "direct"}); err != nil {
		return s, fmt.Errorf("declare the x-delayed-message exchange: %w", err)
	}
	if _, err := ach.QueueDeclare(c.Queue, c.Persistent, false, false, false, nil); err != nil {
		return s, fmt.Errorf("declare the queue: %w", err)
	}
	if err := ach.QueueBind(c.Queue, "due", c.Exchange, false, nil); err != nil {
		return s, fmt.Errorf("bind: %w", err)
	}
	defer func() {
		_, _ = ach.QueueDelete(c.Queue, false, false, false)
		_ = ach.ExchangeDelete(c.Exchange, false, false)
	}()

	// The consumer records lateness as messages arrive.
	cconn, err := amqp.Dial(c.URL)
	if err != nil {
		return s, fmt.Errorf("connect the consumer: %w", err)
	}
	defer cconn.Close()
	cch, err := cconn.Channel()
	if err != nil {
		return s, fmt.Errorf("consumer channel: %w", err)
	}
	deliveries, err := cch.Consume(c.Queue, "", true, false, false, false, nil)
	if err != nil {
		return s, fmt.Errorf("consume: %w", err)
	}
	var hist histogram
	var received, early, earliest atomic.Int64
	allIn := make(chan struct{})
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		for d := range deliveries {
			now := time.Now().UnixMicro()
			due, _ := d.Headers[dueHeader].(int64)
			late := now - due
			if late < 0 {
				early.Add(1)
				if -late > earliest.Load() {
					earliest.Store(-late)
				}
				late = 0
			}
			hist.record(late * int64(time.Microsecond))
			if received.Add(1) == int64(c.Messages) {
				close(allIn)
			}
		}
	}()

	start := time.Now()
	first := start.Add(c.Lead)
	last := first.Add(c.Spread)
	var peak atomic.Int64
	stopSampling := make(chan struct{})
	var sampler sync.WaitGroup
	if c.BrokerPID != "" {
		sampler.Add(1)
		go func() {
			defer sampler.Done()
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for {
				if m, err := procMem(c.BrokerPID); err == nil && m.RSS > peak.Load() {
					peak.Store(m.RSS)
				}
				select {
				case <-t.C:
				case <-stopSampling:
					return
				}
			}
		}()
	}
	var published, publishedLate atomic.Int64
	var perr error
	var pmu sync.Mutex
	var wg sync.WaitGroup
	per := c.Messages / c.Producers
	for p := range c.Producers {
		n := per
		if p == c.Producers-1 {
			n = c.Messages - per*(c.Producers-1)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := publishDelayed(ctx, c, p, n, first, &published, &publishedLate); err != nil {
				pmu.Lock()
				perr = errors.Join(perr, err)
				pmu.Unlock()
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(c.ReportEvery)
	defer tick.Stop()
	deadline := time.NewTimer(time.Until(last.Add(c.Grace)))
	defer deadline.Stop()
	publishing := true
	var waitErr error
wait:
	for {
		select {
		case <-done:
			if publishing {
				publishing = false
				s.PublishSecs = time.Since(start).Seconds()
				done = nil
			}
		case <-allIn:
			break wait
		case <-tick.C:
			fmt.Fprintf(progress, "%5.0fs: published %d, received %d, broker RSS peak %.0f MiB\n",
				time.Since(start).Seconds(), published.Load(), received.Load(), float64(peak.Load())/(1<<20))
		case <-deadline.C:
			waitErr = fmt.Errorf("only %d of %d delivered %v after the last due time", received.Load(), c.Messages, c.Grace)
			break wait
		case <-ctx.Done():
			waitErr = ctx.Err()
			break wait
		}
	}
	if publishing {
		wg.Wait()
		s.PublishSecs = time.Since(start).Seconds()
	}
	close(stopSampling)
	sampler.Wait()
	_ = cch.Close() // ends the deliveries loop; hist is read after it
	<-consumed
	s.Published, s.PublishedLate = published.Load(), publishedLate.Load()
	s.Received, s.Early, s.EarliestMs = received.Load(), early.Load(), float64(earliest.Load())/1e3
	ms := func(ns int64) float64 { return float64(ns) / 1e6 }
	s.LateP50Ms, s.LateP99Ms, s.LateP999Ms = ms(hist.percentile(0.50)), ms(hist.percentile(0.99)), ms(hist.percentile(0.999))
	s.LateMaxMs = ms(hist.max)
	s.PeakRSSMiB = float64(peak.Load()) / (1 << 20)
	return s, errors.Join(perr, waitErr)
}

// publishDelayed publishes n messages with confirms, each due at a uniformly random time in
// the span from first, with x-delay the time left until then.
func publishDelayed(ctx context.Context, c *delayedConfig, id, n int, first time.Time, published, late *atomic.Int64) error {
	conn, err := amqp.Dial(c.URL)
	if err != nil {
		return fmt.Errorf("producer %d: connect: %w", id, err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("producer %d: channel: %w", id, err)
	}
	if err := ch.Confirm(false); err != nil {
		return fmt.Errorf("producer %d: confirm.select: %w", id, err)
	}
	rng := rand.New(rand.NewPCG(uint64(id), 0xde1a7))
	body := make([]byte, c.Size)
	mode := amqp.Transient
	if c.Persistent {
		mode = amqp.Persistent
	}
	inflight := make(chan *amqp.DeferredConfirmation, c.Confirm)
	var waitErr error
	waitOne := func() {
		dc := <-inflight
		if ok, err := dc.WaitContext(ctx); err != nil || !ok {
			waitErr = errors.Join(waitErr, fmt.Errorf("producer %d: publish not confirmed (ack %v): %v", id, ok, err))
		}
	}
	for range n {
		due := first.Add(time.Duration(rng.Int64N(int64(c.Spread))))
		delay := time.Until(due)
		if delay <= 0 {
			late.Add(1)
		}
		ms := (delay + time.Millisecond - 1) / time.Millisecond
		if len(inflight) == cap(inflight) {
			waitOne()
		}
		dc, err := ch.PublishWithDeferredConfirm(c.Exchange, "due", false, false, amqp.Publishing{
			DeliveryMode: mode, Body: body,
			Headers: amqp.Table{"x-delay": int64(ms), dueHeader: due.UnixMicro()},
		})
		if err != nil {
			return fmt.Errorf("producer %d: publish: %w", id, err)
		}
		inflight <- dc
		published.Add(1)
		if waitErr != nil {
			return waitErr
		}
	}
	for len(inflight) > 0 {
		waitOne()
	}
	return waitErr
}
