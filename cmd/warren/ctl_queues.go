package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
)

const ctlQueuesUsage = "usage: warren ctl queues add-member QUEUE NODE [--vhost V] | delete-member QUEUE NODE [--vhost V] | " +
	"grow NODE all|even [--vhost-pattern P] [--queue-pattern P] | shrink NODE"

// ctlQueues runs `warren ctl queues add-member|delete-member|grow|shrink`, rabbitmq-queues'
// commands (their underscore spellings too) over RabbitMQ 3.13's replica endpoints.
func ctlQueues(c *ctlClient, o ctlOptions, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return ctlUsageError(ctlQueuesUsage)
	}
	sub := strings.ReplaceAll(args[0], "_", "-")
	if sub != "grow" && o.patternSet {
		return ctlUsageError("ctl queues %s: --vhost-pattern and --queue-pattern apply to grow only", args[0])
	}
	switch {
	case sub == "add-member" && len(args) == 3:
		return ctlQueueMember(c, o, http.MethodPost, "add", args[1], args[2], stdout)
	case sub == "delete-member" && len(args) == 3:
		return ctlQueueMember(c, o, http.MethodDelete, "delete", args[1], args[2], stdout)
	case sub == "grow" && len(args) == 3:
		if args[2] != "all" && args[2] != "even" {
			return ctlUsageError("ctl queues grow: strategy %q: want all or even", args[2])
		}
		if o.vhostSet {
			return ctlUsageError("ctl queues grow: --vhost does not apply; use --vhost-pattern")
		}
		return ctlQueuesGrow(c, o, args[1], args[2], stdout, stderr)
	case sub == "shrink" && len(args) == 2:
		if o.vhostSet {
			return ctlUsageError("ctl queues shrink: --vhost does not apply (shrink covers every vhost)")
		}
		return ctlQueuesShrink(c, args[1], stdout, stderr)
	}
	return ctlUsageError(ctlQueuesUsage)
}

// ctlQueueMember adds node to (op "add") or removes it from (op "delete") the members of the
// quorum queue in --vhost (default /).
func ctlQueueMember(c *ctlClient, o ctlOptions, method, op, queue, node string, stdout io.Writer) error {
	v := ctlVhost(o)
	body, err := json.Marshal(map[string]string{"node": node})
	if err != nil {
		return fmt.Errorf("queues %s-member: %w", op, err)
	}
	if err := c.send(method, apiPath("queues", "quorum", v, queue, "replicas", op), body,
		map[string]string{"Content-Type": "application/json"}); err != nil {
		return fmt.Errorf("%s member %s of quorum queue %q in vhost %q: %w", op, node, queue, v, err)
	}
	if op == "add" {
		_, err = fmt.Fprintf(stdout, "%s added to quorum queue '%s' in vhost '%s' (it catches up from the leader)\n", node, queue, v)
	} else {
		_, err = fmt.Fprintf(stdout, "%s removed from quorum queue '%s' in vhost '%s'\n", node, queue, v)
	}
	return err
}

// ctlQueuesGrow adds node to every quorum queue the patterns match (all of them by default,
// ".*" as rabbitmq-queues sends) and reports how many of those now list it as a member.
func ctlQueuesGrow(c *ctlClient, o ctlOptions, node, strategy string, stdout, stderr io.Writer) error {
	vp, qp := o.vhostPattern, o.queuePattern
	if vp == "" {
		vp = ".*"
	}
	if qp == "" {
		qp = ".*"
	}
	body, err := json.Marshal(map[string]string{"strategy": strategy, "vhost_pattern": vp, "queue_pattern": qp})
	if err != nil {
		return fmt.Errorf("queues grow: %w", err)
	}
	if err := c.send(http.MethodPost, apiPath("queues", "quorum", "replicas", "on", node, "grow"), body,
		map[string]string{"Content-Type": "application/json"}); err != nil {
		return fmt.Errorf("grow quorum queues onto %s: %w", node, err)
	}
	if _, err := fmt.Fprintf(stdout, "grow of %s requested (strategy %s)\n", node, strategy); err != nil {
		return err
	}
	// The patterns are the broker's to apply; they are applied here too only to count.
	vre, verr := regexp.Compile(vp)
	qre, qerr := regexp.Compile(qp)
	matches := func(q map[string]any) bool {
		vh, _ := q["vhost"].(string)
		name, _ := q["name"].(string)
		return verr != nil || qerr != nil || (vre.MatchString(vh) && qre.MatchString(name))
	}
	return ctlReportMembership(c, node, "matching", matches, stdout, stderr)
}

// ctlQueuesShrink removes node from every quorum queue it is a member of (the broker keeps
// the last member) and reports how many still list it.
func ctlQueuesShrink(c *ctlClient, node string, stdout, stderr io.Writer) error {
	if err := c.send(http.MethodDelete, apiPath("queues", "quorum", "replicas", "on", node, "shrink"), nil, nil); err != nil {
		return fmt.Errorf("shrink quorum queues off %s: %w", node, err)
	}
	if _, err := fmt.Fprintf(stdout, "shrink of %s requested\n", node); err != nil {
		return err
	}
	return ctlReportMembership(c, node, "", func(map[string]any) bool { return true }, stdout, stderr)
}

// ctlReportMembership lists the queues and prints how many of the quorum queues that match
// now list node among their members. The API answers grow and shrink without a body, so the
// listing is how the operator learns the outcome; failing to list is a warning, the change
// having been made.
func ctlReportMembership(c *ctlClient, node, which string, matches func(map[string]any) bool, stdout, stderr io.Writer) error {
	rows, err := c.list(apiPath("queues"))
	if err != nil {
		_, werr := fmt.Fprintf(stderr, "warning: listing the queues afterwards failed: %v\n", err)
		return werr
	}
	total, member := 0, 0
	for _, q := range rows {
		if q["type"] != "quorum" || !matches(q) {
			continue
		}
		total++
		ms, _ := q["members"].([]any)
		if slices.Contains(ms, any(node)) {
			member++
		}
	}
	desc := "quorum queues"
	if which != "" {
		desc = which + " " + desc
	}
	_, err = fmt.Fprintf(stdout, "%s is now a member of %d of %d %s (per queue: warren ctl list queues vhost name members)\n",
		node, member, total, desc)
	return err
}
