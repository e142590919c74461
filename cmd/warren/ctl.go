package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/term"
)

// warren ctl: the operator's CLI over the management HTTP API. It speaks RabbitMQ's API, so
// it works against RabbitMQ's management plugin as well as against Warren.

const ctlUsage = `Usage: warren ctl [flags] COMMAND [ARG...]

Commands (over the management HTTP API; flags may come before or after the command):
  list OBJECTS [COLUMN...]       OBJECTS: queues exchanges bindings connections channels consumers
                                 users vhosts policies permissions nodes; COLUMN is a field of the API's
                                 JSON, or a dotted path into it (message_stats.publish_details.rate)
  close connection NAME [REASON] close a client connection (320 CONNECTION_FORCED - REASON)
  purge queue NAME               remove a queue's ready messages (in --vhost)
  delete queue|exchange|policy NAME   delete one (in --vhost)
  delete user|vhost NAME
  status                         node, version, uptime, listeners, alarms, totals, message rates
  definitions export [FILE]      RabbitMQ's definitions JSON, to FILE or stdout
  definitions import FILE        import a definitions JSON file (- for stdin)
  cluster status                 this node's view of the cluster: leader, members, term
  cluster join NAME@HOST:PORT    add a node (started with cluster-advertise HOST:PORT and a
                                 node-name outside cluster-peers) to the cluster
  cluster leave NAME             remove a node from the cluster
  queues add-member QUEUE NODE   add NODE to a quorum queue's members (in --vhost)
  queues delete-member QUEUE NODE
                                 remove NODE from a quorum queue's members (in --vhost)
  queues grow NODE all|even      add NODE to every quorum queue (even: only those with an even
                                 member count) whose vhost and name match --vhost-pattern and
                                 --queue-pattern (regular expressions, default all)
  queues shrink NODE             remove NODE from every quorum queue (never the last member)
                                 (add_member, delete_member: rabbitmq-queues' spellings work too)

Output: an aligned table with a header on a terminal, tab-separated values without a header
otherwise (as rabbitmqctl); --format forces one. The environment variables WARREN_CTL_URL,
WARREN_CTL_USER and WARREN_CTL_PASSWORD set the defaults of --url, --user and --password.

Flags:
`

// ctlOptions are warren ctl's flags.
type ctlOptions struct {
	url, user, password string
	caCert              string
	format              string
	vhost               string
	vhostSet            bool
	// vhostPattern and queuePattern pick the queues of `queues grow`; patternSet says one
	// was given.
	vhostPattern, queuePattern string
	patternSet                 bool
	timeout                    time.Duration
}

// ctlFlags is the flag set of warren ctl, filling o.
func ctlFlags(o *ctlOptions, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("warren ctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), ctlUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.url, "url", envOr("WARREN_CTL_URL", "http://127.0.0.1:15672"), "the management API's base URL (https:// for TLS)")
	fs.StringVar(&o.user, "user", envOr("WARREN_CTL_USER", "guest"), "the user to log in as (HTTP basic auth)")
	// The default is resolved after parsing, so that --help does not print the password.
	fs.StringVar(&o.password, "password", "", `the user's password (default $WARREN_CTL_PASSWORD, else "guest")`)
	fs.StringVar(&o.caCert, "ca-cert", "", "PEM file of the CA that signed the API's certificate (for an https URL with a private CA)")
	fs.StringVar(&o.format, "format", "", "output format: table, tsv or json (default: table on a terminal, else tsv)")
	fs.StringVar(&o.vhost, "vhost", "", "the virtual host: limits a listing to it; for purge and delete the default is /")
	fs.StringVar(&o.vhost, "p", "", "short for --vhost")
	fs.StringVar(&o.vhostPattern, "vhost-pattern", "", "queues grow: a regular expression the vhosts must match (default all)")
	fs.StringVar(&o.queuePattern, "queue-pattern", "", "queues grow: a regular expression the queue names must match (default all)")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "how long to wait for each API request")
	return fs
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

// parseInterspersed parses flags anywhere among args (warren ctl list queues -p v name) and
// returns the other arguments in order; after "--" everything is an argument.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		n := len(args)
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// fs stopped at "--" (it consumed it) or at the first non-flag argument.
		if len(rest) < n && args[n-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// ctlUsageError is a bad warren ctl command line: exit status 2.
func ctlUsageError(format string, a ...any) error {
	return usageError{err: fmt.Errorf(format+" (see warren ctl --help)", a...)}
}

// ctl runs warren ctl with args.
func ctl(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var o ctlOptions
	fs := ctlFlags(&o, stderr)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "vhost", "p":
			o.vhostSet = true
		case "vhost-pattern", "queue-pattern":
			o.patternSet = true
		}
	})
	if o.password == "" {
		o.password = envOr("WARREN_CTL_PASSWORD", "guest")
	}
	if len(pos) == 0 {
		return ctlUsageError("ctl: a command is missing")
	}
	if o.format == "" {
		o.format = "tsv"
		if isTerminalWriter(stdout) {
			o.format = "table"
		}
	}
	switch o.format {
	case "table", "tsv", "json":
	default:
		return ctlUsageError("ctl: --format %q: want table, tsv or json", o.format)
	}
	c, err := newCtlClient(o)
	if err != nil {
		return err
	}
	cmd, rest := pos[0], pos[1:]
	if o.patternSet && cmd != "queues" {
		return ctlUsageError("ctl %s: --vhost-pattern and --queue-pattern apply to queues grow only", cmd)
	}
	switch cmd {
	case "list":
		return ctlList(c, o, rest, stdout)
	case "close":
		if len(rest) < 2 || len(rest) > 3 || rest[0] != "connection" {
			return ctlUsageError("usage: warren ctl close connection NAME [REASON]")
		}
		reason := ""
		if len(rest) == 3 {
			reason = rest[2]
		}
		return ctlCloseConnection(c, rest[1], reason, stdout)
	case "purge":
		if len(rest) != 2 || rest[0] != "queue" {
			return ctlUsageError("usage: warren ctl purge queue NAME [--vhost VHOST]")
		}
		return ctlPurge(c, o, rest[1], stdout)
	case "delete":
		if len(rest) != 2 {
			return ctlUsageError("usage: warren ctl delete queue|exchange|policy|user|vhost NAME")
		}
		return ctlDelete(c, o, rest[0], rest[1], stdout)
	case "status":
		if len(rest) != 0 {
			return ctlUsageError("usage: warren ctl status")
		}
		return ctlStatus(c, o, stdout)
	case "definitions":
		return ctlDefinitions(c, o, rest, stdin, stdout)
	case "cluster":
		return ctlCluster(c, o, rest, stdout)
	case "queues":
		return ctlQueues(c, o, rest, stdout, stderr)
	}
	return ctlUsageError("ctl: unknown command %q", cmd)
}

// isTerminalWriter says whether w is a terminal (a person reads the output).
func isTerminalWriter(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// ctlVhost is the vhost of a command on one object: --vhost, else "/".
func ctlVhost(o ctlOptions) string {
	if o.vhostSet {
		return o.vhost
	}
	return "/"
}

// ctlCloseConnection closes the connection name with reason (RabbitMQ's default text when "").
func ctlCloseConnection(c *ctlClient, name, reason string, stdout io.Writer) error {
	hdr := map[string]string{}
	if reason != "" {
		hdr["X-Reason"] = reason
	}
	if err := c.send("DELETE", apiPath("connections", name), nil, hdr); err != nil {
		return fmt.Errorf("close connection %q: %w", name, err)
	}
	_, err := fmt.Fprintf(stdout, "Closing connection %s\n", name)
	return err
}

// ctlPurge removes the ready messages of a queue.
func ctlPurge(c *ctlClient, o ctlOptions, name string, stdout io.Writer) error {
	v := ctlVhost(o)
	if err := c.send("DELETE", apiPath("queues", v, name, "contents"), nil, nil); err != nil {
		return fmt.Errorf("purge queue %q in vhost %q: %w", name, v, err)
	}
	_, err := fmt.Fprintf(stdout, "Purged queue %s in vhost %s\n", name, v)
	return err
}

// ctlDelete deletes one object of kind.
func ctlDelete(c *ctlClient, o ctlOptions, kind, name string, stdout io.Writer) error {
	var path, what string
	switch kind {
	case "queue", "exchange", "policy":
		v := ctlVhost(o)
		coll := map[string]string{"queue": "queues", "exchange": "exchanges", "policy": "policies"}[kind]
		path, what = apiPath(coll, v, name), fmt.Sprintf("%s %q in vhost %q", kind, name, v)
	case "user", "vhost":
		if o.vhostSet {
			return ctlUsageError("ctl delete %s: --vhost does not apply", kind)
		}
		path, what = apiPath(kind+"s", name), fmt.Sprintf("%s %q", kind, name)
	default:
		return ctlUsageError("ctl delete: unknown object %q: want queue, exchange, policy, user or vhost", kind)
	}
	if err := c.send("DELETE", path, nil, nil); err != nil {
		return fmt.Errorf("delete %s: %w", what, err)
	}
	_, err := fmt.Fprintf(stdout, "Deleted %s\n", what)
	return err
}

// ctlDefinitions exports or imports RabbitMQ's definitions JSON (of one vhost with --vhost).
func ctlDefinitions(c *ctlClient, o ctlOptions, args []string, stdin io.Reader, stdout io.Writer) error {
	path := apiPath("definitions")
	if o.vhostSet {
		path = apiPath("definitions", o.vhost)
	}
	switch {
	case len(args) >= 1 && len(args) <= 2 && args[0] == "export":
		body, err := c.get(path)
		if err != nil {
			return fmt.Errorf("definitions export: %w", err)
		}
		if len(args) == 1 || args[1] == "-" {
			_, err = stdout.Write(body)
			return err
		}
		// The export holds password hashes: readable by its owner only.
		if err := os.WriteFile(args[1], body, 0o600); err != nil {
			return fmt.Errorf("definitions export: %w", err)
		}
		_, err = fmt.Fprintf(stdout, "Exported definitions to %s\n", args[1])
		return err
	case len(args) == 2 && args[0] == "import":
		var data []byte
		var err error
		if args[1] == "-" {
			data, err = io.ReadAll(stdin)
		} else {
			data, err = os.ReadFile(args[1])
		}
		if err != nil {
			return fmt.Errorf("definitions import: %w", err)
		}
		if !jsonValid(data) {
			return fmt.Errorf("definitions import: %s is not JSON", args[1])
		}
		if err := c.send("POST", path, data, map[string]string{"Content-Type": "application/json"}); err != nil {
			return fmt.Errorf("definitions import %s: %w", args[1], err)
		}
		_, err = fmt.Fprintf(stdout, "Imported definitions from %s\n", args[1])
		return err
	}
	return ctlUsageError("usage: warren ctl definitions export [FILE] | warren ctl definitions import FILE")
}
