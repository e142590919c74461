package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/warrenmq/warren/configs"
)

const ctlClusterUsage = "usage: warren ctl cluster status | join NAME@HOST:PORT | leave NAME"

// ctlCluster runs `warren ctl cluster status|join|leave`.
func ctlCluster(c *ctlClient, o ctlOptions, args []string, stdout io.Writer) error {
	switch {
	case len(args) == 1 && args[0] == "status":
		return ctlClusterStatus(c, o, stdout)
	case len(args) == 2 && args[0] == "join":
		p, err := configs.ParsePeer(args[1])
		if err != nil {
			return ctlUsageError(ctlClusterUsage + ": " + err.Error())
		}
		body, _ := json.Marshal(map[string]string{"name": p.Name, "address": p.Addr})
		if err := c.send(http.MethodPost, apiPath("warren", "cluster", "members"), body,
			map[string]string{"Content-Type": "application/json"}); err != nil {
			return fmt.Errorf("cluster join %s: %w", p, err)
		}
		_, err = fmt.Fprintf(stdout, "%s joined the cluster\n", p.Name)
		return err
	case len(args) == 2 && args[0] == "leave":
		if err := c.send(http.MethodDelete, apiPath("warren", "cluster", "members", args[1]), nil, nil); err != nil {
			return fmt.Errorf("cluster leave %s: %w", args[1], err)
		}
		_, err := fmt.Fprintf(stdout, "%s left the cluster\n", args[1])
		return err
	}
	return ctlUsageError(ctlClusterUsage)
}

// ctlClusterStatus prints this node's view of the cluster from GET /api/warren/cluster
// (Warren's own endpoint), one row per member.
func ctlClusterStatus(c *ctlClient, o ctlOptions, stdout io.Writer) error {
	var st struct {
		Clustered bool   `json:"clustered"`
		Node      string `json:"node"`
		State     string `json:"state"`
		Leader    string `json:"leader"`
		Term      uint64 `json:"term"`
		Commit    uint64 `json:"commit_index"`
		Members   []struct {
			Name    string `json:"name"`
			Address string `json:"address"`
			Voter   bool   `json:"voter"`
			Leader  bool   `json:"leader"`
		} `json:"members"`
	}
	if err := c.getJSON(apiPath("warren", "cluster"), &st); err != nil {
		return fmt.Errorf("cluster status: GET /api/warren/cluster: %w", err)
	}
	if !st.Clustered {
		_, err := fmt.Fprintf(stdout, "%s runs alone (no cluster-peers)\n", st.Node)
		return err
	}
	if o.format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	if o.format == "table" {
		if _, err := fmt.Fprintf(stdout, "node %s (%s), leader %s, term %d, commit index %d\n",
			st.Node, st.State, st.Leader, st.Term, st.Commit); err != nil {
			return err
		}
	}
	rows := make([]map[string]any, 0, len(st.Members))
	for _, m := range st.Members {
		role := "follower"
		switch {
		case m.Leader:
			role = "leader"
		case !m.Voter:
			role = "non-voter"
		}
		rows = append(rows, map[string]any{"name": m.Name, "address": m.Address, "role": role})
	}
	return writeRows(stdout, o.format, []string{"name", "address", "role"}, rows)
}
