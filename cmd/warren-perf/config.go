package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// config is one run's settings, parsed from the command line by parseConfig.
type config struct {
	URL string

	Producers int
	Consumers int

	Queues       int    // how many queues, named from QueuePattern
	QueuePattern string // fmt pattern with one %d (1-based), or a plain name when Queues is 1
	Durable      bool
	AutoDelete   bool
	QueueArgs    amqp.Table
	NoDeclare    bool // --predeclared / --no-declare: use the queues and exchange as they are
	DeleteAfter  bool // delete the queues when the run ends

	Exchange     string // "" publishes through the default exchange to each producer's queue
	ExchangeType string
	RoutingKey   string // may hold {word} placeholders, replaced by random words (topic)
	BindingKey   string // defaults from RoutingKey: {word} becomes * for topic
	Headers      amqp.Table

	Size       int
	Persistent bool
	Confirm    int
	Rate       float64
	PMessages  int64

	Prefetch  int
	MultiAck  int
	AutoAck   bool
	CMessages int64
	IdleExit  time.Duration

	// TopicBindings binds this many distinct keys (stock.<i>.*) from a topic exchange,
	// spread over the queues, and producers cycle through routing keys (stock.<i>.tick) that
	// each match one of them.
	TopicBindings int

	// IdleConnections opens this many connections, each with one channel, and holds them
	// for the run; IdleConcurrency of them are opened at once.
	IdleConnections int
	IdleConcurrency int

	Duration  time.Duration
	Interval  time.Duration
	BrokerPID int
	ResetHWM  bool // reset the broker's VmHWM at the start (/proc/PID/clear_refs)
	JSON      bool
	Label     string // names the run in the summary and in "warren-perf table"
}

// parseConfig parses and validates the command line; the usage text goes to out on errors
// and --help.
func parseConfig(args []string, out io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("warren-perf", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.URL, "url", "amqp://guest:guest@127.0.0.1:5672/", "AMQP URL of the broker (Warren, RabbitMQ or any AMQP 0-9-1 broker)")
	fs.IntVar(&c.Producers, "producers", 1, "producers, each on its own connection and channel")
	fs.IntVar(&c.Consumers, "consumers", 1, "consumers, each on its own connection and channel")
	fs.IntVar(&c.Queues, "queues", 1, "number of queues; producer i publishes to and consumer i consumes from queue i mod N")
	fs.StringVar(&c.QueuePattern, "queue-pattern", "warren-perf-%d", "queue names: a fmt pattern with one %d (numbered from 1), or a plain name when --queues is 1")
	fs.BoolVar(&c.Durable, "durable", true, "declare the queues (and the exchange) durable")
	fs.BoolVar(&c.AutoDelete, "auto-delete", false, "declare the queues auto-delete")
	queueArgs := fs.String("queue-args", "", "queue.declare arguments, k=v,k=v (integers become numbers), e.g. x-queue-mode=lazy")
	fs.BoolVar(&c.NoDeclare, "predeclared", false, "the queues, exchange and bindings exist: declare nothing")
	fs.BoolVar(&c.NoDeclare, "no-declare", false, "same as --predeclared")
	fs.BoolVar(&c.DeleteAfter, "delete-queues", false, "delete the queues (and the exchange, unless predeclared) when the run ends")
	fs.StringVar(&c.Exchange, "exchange", "", "exchange to publish to; empty: the default exchange, routing key = the queue's name")
	fs.StringVar(&c.ExchangeType, "exchange-type", "direct", "type of --exchange: direct, fanout, topic or headers")
	fs.StringVar(&c.RoutingKey, "routing-key", "", "routing key for --exchange; {word} is replaced by a random word per message (topic); default warren-perf")
	fs.StringVar(&c.BindingKey, "binding-key", "", "binding key of each queue to --exchange; default: the routing key with {word} as * (topic)")
	headers := fs.String("headers", "", "message headers k=v,k=v; for a headers exchange also the binding (x-match=all); default warren-perf=1 there")
	fs.IntVar(&c.Size, "size", 1024, "message body size in bytes (the first 8 carry the send time; under 8: no latency)")
	fs.BoolVar(&c.Persistent, "persistent", false, "publish with delivery-mode 2")
	fs.IntVar(&c.Confirm, "confirm", 0, "publisher confirms with at most N unconfirmed messages per producer; 0 = off")
	fs.Float64Var(&c.Rate, "rate", 0, "messages per second per producer; 0 = unlimited")
	fs.Int64Var(&c.PMessages, "pmessages", 0, "each producer stops after N messages (and their confirms); 0 = no limit")
	fs.IntVar(&c.Prefetch, "prefetch", 0, "basic.qos prefetch count per consumer; 0 = unlimited")
	fs.IntVar(&c.MultiAck, "multi-ack", 0, "ack every N deliveries with one multiple=true ack; 0 = ack each delivery alone (multiple=false)")
	fs.BoolVar(&c.AutoAck, "autoack", false, "consume with no-ack (automatic acknowledgement)")
	fs.Int64Var(&c.CMessages, "cmessages", 0, "each consumer stops after N messages; 0 = no limit")
	fs.DurationVar(&c.IdleExit, "idle-exit", 0, "a consumer stops after receiving nothing for this long, once it has received something (for drains); 0 = never")
	fs.IntVar(&c.TopicBindings, "topic-bindings", 0, "with --exchange-type topic: bind N keys stock.<i>.* (i < N, spread over the queues) and publish with routing keys stock.<i>.tick, cycling through i, so each message matches one binding")
	fs.IntVar(&c.IdleConnections, "idle-connections", 0, "open N more connections with one channel each and hold them for the run (--producers and --consumers then default to 0)")
	fs.IntVar(&c.IdleConcurrency, "idle-concurrency", 64, "idle connections opened at once")
	fs.DurationVar(&c.Duration, "duration", 0, "stop after this long; 0 = when the message limits are reached, or on SIGINT")
	fs.DurationVar(&c.Interval, "interval", time.Second, "progress report interval; 0 = no progress lines")
	fs.IntVar(&c.BrokerPID, "broker-pid", 0, "PID of the broker process (warren; beam.smp for RabbitMQ) to report its CPU time and memory")
	fs.BoolVar(&c.ResetHWM, "reset-hwm", false, "with --broker-pid: reset the broker's VmHWM at the start (writes 5 to /proc/PID/clear_refs; needs the right to), so it is this run's peak")
	fs.StringVar(&c.Label, "label", "", "a name for the run, carried into the summary (and the row of \"warren-perf table\")")
	fs.BoolVar(&c.JSON, "json", false, "print the final summary as one JSON object on stdout (progress lines go to stderr)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.IdleConnections > 0 {
		// An idle-connection run holds connections and publishes nothing unless asked to.
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["producers"] {
			c.Producers = 0
		}
		if !set["consumers"] {
			c.Consumers = 0
		}
	}
	var err error
	if c.QueueArgs, err = parseTable(*queueArgs); err != nil {
		return nil, fmt.Errorf("--queue-args: %w", err)
	}
	if c.Headers, err = parseTable(*headers); err != nil {
		return nil, fmt.Errorf("--headers: %w", err)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// validate checks the settings and fills in defaults that depend on other flags.
func (c *config) validate() error {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "amqp" && u.Scheme != "amqps") || u.Host == "" {
		return fmt.Errorf("--url %q: want amqp://user:pass@host:port/vhost", c.URL)
	}
	switch {
	case c.Producers < 0, c.Consumers < 0, c.Queues < 0:
		return errors.New("--producers, --consumers and --queues must not be negative")
	case c.IdleConnections < 0, c.TopicBindings < 0:
		return errors.New("--idle-connections and --topic-bindings must not be negative")
	case c.IdleConcurrency < 1:
		return errors.New("--idle-concurrency must be at least 1")
	case c.Producers == 0 && c.Consumers == 0 && c.IdleConnections == 0:
		return errors.New("nothing to do: --producers, --consumers and --idle-connections are all 0")
	case c.Size < 0:
		return errors.New("--size must not be negative")
	case c.Confirm < 0:
		return errors.New("--confirm must not be negative")
	case c.Rate < 0:
		return errors.New("--rate must not be negative")
	case c.PMessages < 0, c.CMessages < 0:
		return errors.New("--pmessages and --cmessages must not be negative")
	case c.Prefetch < 0 || c.Prefetch > 65535:
		return errors.New("--prefetch must be between 0 and 65535")
	case c.MultiAck < 0:
		return errors.New("--multi-ack must not be negative (use --autoack for no acknowledgements)")
	case c.Duration < 0, c.IdleExit < 0, c.Interval < 0:
		return errors.New("--duration, --idle-exit and --interval must not be negative")
	case c.BrokerPID < 0:
		return errors.New("--broker-pid must not be negative")
	case c.ResetHWM && c.BrokerPID == 0:
		return errors.New("--reset-hwm needs --broker-pid")
	}
	if c.AutoAck && c.MultiAck > 0 {
		return errors.New("--multi-ack and --autoack exclude each other")
	}
	if !c.AutoAck && c.Prefetch > 0 && c.MultiAck > c.Prefetch {
		return fmt.Errorf("--multi-ack %d exceeds --prefetch %d: consumers would stall waiting for deliveries they cannot get", c.MultiAck, c.Prefetch)
	}
	switch c.ExchangeType {
	case amqp.ExchangeDirect, amqp.ExchangeFanout, amqp.ExchangeTopic, amqp.ExchangeHeaders:
	default:
		return fmt.Errorf("--exchange-type %q: want direct, fanout, topic or headers", c.ExchangeType)
	}
	if c.Exchange == "" && c.ExchangeType != amqp.ExchangeDirect {
		// Without a name the default exchange would route by queue name, and a fanout or
		// topic run would quietly feed one queue.
		c.Exchange = "warren-perf-" + c.ExchangeType
	}
	if c.Queues == 0 && (c.Consumers > 0 || c.Exchange == "") {
		return errors.New("--queues 0 needs --exchange and no consumers")
	}
	if c.Queues > 1 && strings.Count(c.QueuePattern, "%d") != 1 {
		return fmt.Errorf("--queue-pattern %q: needs exactly one %%d for %d queues", c.QueuePattern, c.Queues)
	}
	if strings.Count(c.QueuePattern, "%")-strings.Count(c.QueuePattern, "%d") > 0 {
		return fmt.Errorf("--queue-pattern %q: only %%d is allowed", c.QueuePattern)
	}
	if c.TopicBindings > 0 {
		switch {
		case c.ExchangeType != amqp.ExchangeTopic:
			return errors.New("--topic-bindings needs --exchange-type topic")
		case c.RoutingKey != "" || c.BindingKey != "":
			return errors.New("--topic-bindings sets the routing and binding keys itself: leave out --routing-key and --binding-key")
		case c.Queues == 0:
			return errors.New("--topic-bindings needs at least one queue")
		}
	}
	if c.Exchange == "" {
		if c.RoutingKey != "" || c.BindingKey != "" {
			return errors.New("--routing-key and --binding-key need --exchange (the default exchange routes by queue name)")
		}
		return nil
	}
	if c.RoutingKey == "" {
		c.RoutingKey = "warren-perf"
	}
	if strings.Contains(c.RoutingKey, wordToken) && c.ExchangeType != amqp.ExchangeTopic {
		return fmt.Errorf("--routing-key %q: %s needs --exchange-type topic", c.RoutingKey, wordToken)
	}
	if c.BindingKey == "" {
		c.BindingKey = strings.ReplaceAll(c.RoutingKey, wordToken, "*")
	}
	if c.ExchangeType == amqp.ExchangeHeaders && len(c.Headers) == 0 {
		c.Headers = amqp.Table{"warren-perf": "1"}
	}
	return nil
}

// queueName is the name of queue i (0-based).
func (c *config) queueName(i int) string {
	if !strings.Contains(c.QueuePattern, "%d") {
		return c.QueuePattern
	}
	return fmt.Sprintf(c.QueuePattern, i+1)
}

// parseTable parses k=v,k=v into a table; values that parse as integers become int64,
// true/false become booleans.
func parseTable(s string) (amqp.Table, error) {
	if s == "" {
		return nil, nil
	}
	t := amqp.Table{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q: want key=value", kv)
		}
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			t[k] = n
		} else if b, err := strconv.ParseBool(v); err == nil && (v == "true" || v == "false") {
			t[k] = b
		} else {
			t[k] = v
		}
	}
	return t, nil
}

// redactURL hides the password of an AMQP URL for printing.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(invalid url)"
	}
	return u.Redacted()
}
