package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"time"
)

// clusterView is what GET /api/warren/cluster says on one node.
type clusterView struct {
	Clustered bool   `json:"clustered"`
	Leader    string `json:"leader"`
	Members   []struct {
		Name string `json:"name"`
	} `json:"members"`
}

func (v clusterView) memberNames() []string {
	var out []string
	for _, m := range v.Members {
		out = append(out, m.Name)
	}
	sort.Strings(out)
	return out
}

// leader names the node to hit first: the queue's leader when the broker reports one (the
// "leader" field of RabbitMQ's quorum queues in /api/queues), else the metadata group's
// leader; nil when no running node knows.
func (ns *nodes) leader(queue string) *node {
	for _, n := range ns.list {
		if n.down() || n.isPaused() {
			continue
		}
		var q map[string]any
		if err := ns.getJSON(n, "/api/queues/%2F/"+url.PathEscape(queue), &q); err == nil {
			if s, ok := q["leader"].(string); ok {
				if l := ns.byName(s); l != nil {
					return l
				}
			}
		}
		var v clusterView
		if err := ns.getJSON(n, "/api/warren/cluster", &v); err == nil && v.Leader != "" {
			if l := ns.byName(v.Leader); l != nil {
				return l
			}
		}
	}
	return nil
}

// settle waits until every node is up and, in a cluster, every node names the same leader,
// one of them, and the same members.
func (ns *nodes) settle(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, n := range ns.list {
		if err := ns.waitReady(ctx, n, timeout); err != nil {
			return err
		}
	}
	if !ns.clustered() {
		return nil
	}
	var last string
	for {
		leader, why := "", ""
		for _, n := range ns.list {
			var v clusterView
			if err := ns.getJSON(n, "/api/warren/cluster", &v); err != nil {
				why = err.Error()
				break
			}
			if v.Leader == "" || ns.byName(v.Leader) == nil || (leader != "" && v.Leader != leader) || len(v.Members) != len(ns.list) {
				why = fmt.Sprintf("%s sees leader %q and %d members", n.name, v.Leader, len(v.Members))
				break
			}
			leader = v.Leader
		}
		if why == "" {
			return nil
		}
		last = why
		if time.Now().After(deadline) {
			return fmt.Errorf("the cluster did not settle within %s: %s", timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// nodeState is one node's view of the final state.
type nodeState struct {
	Queues   []string `json:"queues"`   // vhost/name, sorted
	Messages float64  `json:"messages"` // the run's queue; -1 when the node does not list it
	Members  []string `json:"members"`  // cluster membership, sorted (none for a single node)
	// QueueMembers are the run's queue's members (a quorum queue's), sorted.
	QueueMembers []string `json:"queue_members,omitempty"`
}

func (ns *nodes) stateOf(n *node, queue string) (nodeState, error) {
	var qs []map[string]any
	if err := ns.getJSON(n, "/api/queues", &qs); err != nil {
		return nodeState{}, err
	}
	st := nodeState{Messages: -1}
	for _, q := range qs {
		vh, _ := q["vhost"].(string)
		name, _ := q["name"].(string)
		st.Queues = append(st.Queues, vh+"/"+name)
		if vh == "/" && name == queue {
			st.Messages, _ = q["messages"].(float64)
			ms, _ := q["members"].([]any)
			for _, m := range ms {
				if s, ok := m.(string); ok {
					st.QueueMembers = append(st.QueueMembers, s)
				}
			}
			sort.Strings(st.QueueMembers)
		}
	}
	sort.Strings(st.Queues)
	var v clusterView
	if err := ns.getJSON(n, "/api/warren/cluster", &v); err != nil {
		return nodeState{}, err
	}
	st.Members = v.memberNames()
	return st, nil
}

// agree waits until every node reports the same queues, the same membership and an empty
// queue for the run's; it returns what still differs after timeout (nil when they agree),
// and every node's last view.
func (ns *nodes) agree(ctx context.Context, queue string, timeout time.Duration) ([]string, map[string]nodeState) {
	deadline := time.Now().Add(timeout)
	for {
		views := map[string]nodeState{}
		var problems []string
		var first *nodeState
		firstName := ""
		for _, n := range ns.list {
			st, err := ns.stateOf(n, queue)
			if err != nil {
				problems = append(problems, err.Error())
				continue
			}
			views[n.name] = st
			if st.Messages != 0 {
				problems = append(problems, fmt.Sprintf("%s reports %v messages in %s after the drain (-1: no such queue)", n.name, st.Messages, queue))
			}
			if first == nil {
				first, firstName = &st, n.name
				continue
			}
			if !reflect.DeepEqual(st.Queues, first.Queues) {
				problems = append(problems, fmt.Sprintf("%s lists queues [%s], %s lists [%s]", n.name, strings.Join(st.Queues, " "), firstName, strings.Join(first.Queues, " ")))
			}
			if !reflect.DeepEqual(st.Members, first.Members) {
				problems = append(problems, fmt.Sprintf("%s sees members %v, %s sees %v", n.name, st.Members, firstName, first.Members))
			}
			if !reflect.DeepEqual(st.QueueMembers, first.QueueMembers) {
				problems = append(problems, fmt.Sprintf("%s lists %s's members %v, %s lists %v", n.name, queue, st.QueueMembers, firstName, first.QueueMembers))
			}
		}
		if len(problems) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return problems, views
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// changeMember takes n out of queue's members (add false) or adds it back, through the
// management API of a running node other than n (RabbitMQ's replicas/delete and
// replicas/add). It retries for 30 s while the cluster answers 5xx or cannot be reached (a
// metadata leader being elected after the previous fault); a change that was already made
// (400: not a member, already a member) counts as done.
func (ns *nodes) changeMember(ctx context.Context, queue string, n *node, add bool) error {
	method, path, want := "DELETE", "/api/queues/quorum/%2F/"+url.PathEscape(queue)+"/replicas/delete", http.StatusAccepted
	if add {
		method, path, want = "POST", "/api/queues/quorum/%2F/"+url.PathEscape(queue)+"/replicas/add", http.StatusNoContent
	}
	body := `{"node":"` + n.name + `"}`
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) && ctx.Err() == nil {
		for _, via := range ns.list {
			if via == n || via.down() || via.isPaused() {
				continue
			}
			code, text, err := ns.send(via, method, path, body)
			switch {
			case err != nil:
				last = err.Error()
			case code == want:
				return nil
			case code == http.StatusBadRequest && (strings.Contains(text, "not a member") || strings.Contains(text, "already a member")):
				return nil
			case code < 500:
				return fmt.Errorf("%s %s through %s: HTTP %d: %s", method, path, via.name, code, text)
			default:
				last = fmt.Sprintf("%s: HTTP %d: %s", via.name, code, text)
			}
		}
		sleep(ctx, 500*time.Millisecond)
	}
	return fmt.Errorf("%s %s: not done within 30 s: %s", method, path, last)
}
