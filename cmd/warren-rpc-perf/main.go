// Command warren-rpc-perf measures RPC round trips over direct reply-to (amq.rabbitmq.reply-to)
// against any AMQP 0-9-1 broker that has it (Warren, RabbitMQ).
//
// Each caller has its own connection and channel, consumes from amq.rabbitmq.reply-to and sends
// one request at a time to a request queue, waiting for the reply before the next. Servers, each
// on its own connection, consume the requests (no-ack) and publish every reply to the default
// exchange with the request's reply_to as the routing key. The figures are round trips per
// second over the measured period and the round-trip latency percentiles.
//
//	warren-rpc-perf --url amqp://guest:guest@127.0.0.1:5672/ --callers 100 --servers 4 --duration 10s
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

const replyTo = "amq.rabbitmq.reply-to"

// config is one run's settings.
type config struct {
	URL       string
	Callers   int
	Servers   int
	Size      int
	Warmup    time.Duration
	Duration  time.Duration
	JSON      bool
	Label     string
	BrokerPID int    // 0: do not measure the broker's CPU time
	Client    string // amqp091 or lean (lean.go)
}

func parseConfig(args []string, out io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("warren-rpc-perf", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.URL, "url", "amqp://guest:guest@127.0.0.1:5672/", "AMQP URL of the broker")
	fs.IntVar(&c.Callers, "callers", 1, "concurrent callers, each on its own connection, one request in flight each")
	fs.IntVar(&c.Servers, "servers", 1, "RPC servers, each on its own connection, consuming the requests")
	fs.IntVar(&c.Size, "size", 64, "request and reply body size in bytes")
	fs.DurationVar(&c.Warmup, "warmup", 2*time.Second, "time to run before measuring")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "measured time")
	fs.BoolVar(&c.JSON, "json", false, "print the summary as JSON")
	fs.StringVar(&c.Label, "label", "", "names the run in the summary")
	fs.StringVar(&c.Client, "client", "amqp091", "client library of callers and servers: amqp091 (amqp091-go, as applications use) or lean (a minimal client on Warren's codec, for a broker's capacity on a machine the load generator shares)")
	fs.IntVar(&c.BrokerPID, "broker-pid", 0, "PID of the broker (on this machine) whose CPU time to report per round trip")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch {
	case fs.NArg() > 0:
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case c.Callers < 1 || c.Servers < 1:
		return nil, errors.New("--callers and --servers must be at least 1")
	case c.Client != "amqp091" && c.Client != "lean":
		return nil, fmt.Errorf("--client %q: want amqp091 or lean", c.Client)
	case c.Size < 0 || c.Warmup < 0 || c.Duration <= 0:
		return nil, errors.New("--size and --warmup must not be negative, --duration must be positive")
	}
	return c, nil
}

// summary is what a run measured.
type summary struct {
	Label      string  `json:"label,omitempty"`
	Callers    int     `json:"callers"`
	Servers    int     `json:"servers"`
	Size       int     `json:"size"`
	Client     string  `json:"client"`
	Seconds    float64 `json:"seconds"`
	RoundTrips int     `json:"round_trips"`
	Rate       float64 `json:"round_trips_per_second"`
	P50us      float64 `json:"p50_us"`
	P99us      float64 `json:"p99_us"`
	Maxus      float64 `json:"max_us"`
	// The broker's CPU time over the measured period, with --broker-pid.
	BrokerCores  float64 `json:"broker_cores,omitempty"`
	BrokerCPUPer float64 `json:"broker_cpu_us_per_round_trip,omitempty"`
	// This process's (callers' and servers') CPU time over the measured period, on Linux.
	ClientCores  float64 `json:"client_cores,omitempty"`
	ClientCPUPer float64 `json:"client_cpu_us_per_round_trip,omitempty"`
}

func (s *summary) String() string {
	line := fmt.Sprintf("%s%s callers %d servers %d size %d: %d round trips in %.1fs = %.0f/s; latency p50 %.0fµs p99 %.0fµs max %.0fµs",
		labelPrefix(s.Label), s.Client, s.Callers, s.Servers, s.Size, s.RoundTrips, s.Seconds, s.Rate, s.P50us, s.P99us, s.Maxus)
	if s.BrokerCores > 0 {
		line += fmt.Sprintf("; broker %.2f cores, %.1fµs CPU per round trip", s.BrokerCores, s.BrokerCPUPer)
	}
	if s.ClientCores > 0 {
		line += fmt.Sprintf("; load generator %.2f cores, %.1fµs CPU per round trip", s.ClientCores, s.ClientCPUPer)
	}
	return line
}

func labelPrefix(l string) string {
	if l == "" {
		return ""
	}
	return l + ": "
}

func main() {
	c, err := parseConfig(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "warren-rpc-perf:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	s, err := run(ctx, c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "warren-rpc-perf:", err)
		os.Exit(1)
	}
	if c.JSON {
		_ = json.NewEncoder(os.Stdout).Encode(s)
		return
	}
	fmt.Println(s)
}

// run starts the servers, then the callers, and measures after the warm-up.
func run(ctx context.Context, c *config) (*summary, error) {
	var b [6]byte
	_, _ = rand.Read(b[:])
	queue := "warren-rpc-perf-" + hex.EncodeToString(b[:])
	body := make([]byte, c.Size)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, c.Servers+c.Callers)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	spawn := func(f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- f()
		}()
	}
	startClients := startAMQP091
	if c.Client == "lean" {
		startClients = startLean
	}
	callers, closeAll, err := startClients(ctx, c, queue, body, spawn)
	defer func() {
		cancel() // first: the workers see the end of the run, not closed connections
		closeAll()
	}()
	if err != nil {
		return nil, err
	}
	var measuring sync.WaitGroup
	start := make(chan struct{})
	for _, cl := range callers {
		measuring.Add(1)
		spawn(func() error { return cl.loop(ctx, start, c.Warmup, c.Duration, &measuring) })
	}
	close(start)
	// CPU times are read when the measured period starts and once it is over: the broker's
	// with --broker-pid, and this process's where /proc has it.
	type cpuTimes struct{ broker, client time.Duration }
	read := func() cpuTimes {
		t := cpuTimes{broker: -1, client: -1}
		if c.BrokerPID > 0 {
			if d, err := processCPU(c.BrokerPID); err == nil {
				t.broker = d
			}
		}
		if d, err := processCPU(os.Getpid()); err == nil {
			t.client = d
		}
		return t
	}
	cpu0 := make(chan cpuTimes, 1)
	at := time.AfterFunc(c.Warmup, func() { cpu0 <- read() })
	defer at.Stop()
	done := make(chan struct{})
	go func() { measuring.Wait(); close(done) }()
	select {
	case <-done:
	case err := <-errs:
		if err == nil {
			err = errors.New("a worker stopped early")
		}
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}

	before, after := <-cpu0, read()
	if c.BrokerPID > 0 && (before.broker < 0 || after.broker < 0) {
		return nil, fmt.Errorf("could not read the CPU time of the broker (PID %d) from /proc", c.BrokerPID)
	}
	var lat []time.Duration
	for _, cl := range callers {
		lat = append(lat, cl.latencies...)
	}
	s := &summary{Label: c.Label, Callers: c.Callers, Servers: c.Servers, Size: c.Size, Client: c.Client,
		Seconds: c.Duration.Seconds(), RoundTrips: len(lat)}
	s.Rate = float64(len(lat)) / c.Duration.Seconds()
	s.BrokerCores, s.BrokerCPUPer = cpuFigures(before.broker, after.broker, c.Duration, len(lat))
	s.ClientCores, s.ClientCPUPer = cpuFigures(before.client, after.client, c.Duration, len(lat))
	if len(lat) > 0 {
		slices.Sort(lat)
		us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
		s.P50us, s.P99us, s.Maxus = us(lat[len(lat)/2]), us(lat[len(lat)*99/100]), us(lat[len(lat)-1])
	}
	return s, nil
}

// startAMQP091 starts the servers and prepares the callers on amqp091-go connections; spawn
// runs the servers. closeAll closes every connection it opened.
func startAMQP091(ctx context.Context, c *config, queue string, body []byte, spawn func(func() error)) ([]*caller, func(), error) {
	var conns []*amqp.Connection
	closeAll := func() {
		for _, conn := range conns {
			_ = conn.Close()
		}
	}
	dial := func() (*amqp.Channel, error) {
		conn, err := amqp.Dial(c.URL)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", c.URL, err)
		}
		conns = append(conns, conn)
		ch, err := conn.Channel()
		if err != nil {
			return nil, fmt.Errorf("open channel: %w", err)
		}
		return ch, nil
	}
	for i := 0; i < c.Servers; i++ {
		ch, err := dial()
		if err != nil {
			return nil, closeAll, err
		}
		// Auto-delete: the queue goes away with the last server.
		if _, err := ch.QueueDeclare(queue, false, true, false, false, nil); err != nil {
			return nil, closeAll, fmt.Errorf("declare %s: %w", queue, err)
		}
		reqs, err := ch.Consume(queue, "", true, false, false, false, nil)
		if err != nil {
			return nil, closeAll, fmt.Errorf("consume %s: %w", queue, err)
		}
		spawn(func() error { return serve(ctx, ch, reqs, body) })
	}
	callers := make([]*caller, c.Callers)
	for i := range callers {
		ch, err := dial()
		if err != nil {
			return nil, closeAll, err
		}
		replies, err := ch.Consume(replyTo, "", true, false, false, false, nil)
		if err != nil {
			return nil, closeAll, fmt.Errorf("consume %s: %w", replyTo, err)
		}
		callers[i] = &caller{roundTrip: amqp091RoundTrip(ch, replies, queue, body)}
	}
	return callers, closeAll, nil
}

// startLean is startAMQP091 with leanConn connections; they close when ctx ends.
func startLean(ctx context.Context, c *config, queue string, body []byte, spawn func(func() error)) ([]*caller, func(), error) {
	noop := func() {}
	for i := 0; i < c.Servers; i++ {
		conn, err := leanDial(ctx, c.URL)
		if err != nil {
			return nil, noop, err
		}
		if err := conn.declare(queue); err != nil {
			return nil, noop, fmt.Errorf("declare %s: %w", queue, err)
		}
		if err := conn.consume(queue); err != nil {
			return nil, noop, fmt.Errorf("consume %s: %w", queue, err)
		}
		spawn(func() error { return leanServe(ctx, conn, body) })
	}
	callers := make([]*caller, c.Callers)
	for i := range callers {
		conn, err := leanDial(ctx, c.URL)
		if err != nil {
			return nil, noop, err
		}
		if err := conn.consume(replyTo); err != nil {
			return nil, noop, fmt.Errorf("consume %s: %w", replyTo, err)
		}
		callers[i] = &caller{roundTrip: leanRoundTrip(conn, queue, body)}
	}
	return callers, noop, nil
}

// serve answers every request with a reply to its reply_to.
func serve(ctx context.Context, ch *amqp.Channel, reqs <-chan amqp.Delivery, body []byte) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case d, ok := <-reqs:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return errors.New("server: request consumer ended")
			}
			err := ch.PublishWithContext(ctx, "", d.ReplyTo, false, false,
				amqp.Publishing{CorrelationId: d.CorrelationId, Body: body})
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("server: publish reply: %w", err)
			}
		}
	}
}

// amqp091RoundTrip returns a caller's round trip on ch: a request with reply_to
// amq.rabbitmq.reply-to, then its reply from replies.
func amqp091RoundTrip(ch *amqp.Channel, replies <-chan amqp.Delivery, queue string, body []byte) func(ctx context.Context, id string) error {
	return func(ctx context.Context, id string) error {
		err := ch.PublishWithContext(ctx, "", queue, false, false,
			amqp.Publishing{ReplyTo: replyTo, CorrelationId: id, Body: body})
		if err != nil {
			return fmt.Errorf("publish request: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case d, ok := <-replies:
			if !ok {
				return errors.New("reply consumer ended")
			}
			if d.CorrelationId != id {
				return fmt.Errorf("reply for %q, want %q", d.CorrelationId, id)
			}
			return nil
		}
	}
}

// caller sends one request at a time and times each round trip.
type caller struct {
	roundTrip func(ctx context.Context, id string) error
	latencies []time.Duration
}

// loop calls until ctx ends, recording the round trips completed in the measured period
// [warmup, warmup+duration) after start; it marks measuring done when that period is over.
func (cl *caller) loop(ctx context.Context, start <-chan struct{}, warmup, duration time.Duration, measuring *sync.WaitGroup) error {
	<-start
	begin := time.Now().Add(warmup)
	end := begin.Add(duration)
	finished := false
	finish := func() {
		if !finished {
			finished = true
			measuring.Done()
		}
	}
	defer finish()
	for n := 0; ; n++ {
		sent := time.Now()
		if err := cl.roundTrip(ctx, strconv.Itoa(n)); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("caller: %w", err)
		}
		now := time.Now()
		switch {
		case now.Before(begin):
		case now.Before(end):
			cl.latencies = append(cl.latencies, now.Sub(sent))
		default:
			finish()
		}
	}
}
