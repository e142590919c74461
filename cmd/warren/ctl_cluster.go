package main

import (
	"encoding/json"
	"fmt"
	"io"
)

// ctlCluster runs `warren ctl cluster status`: this node's view of the cluster from GET
// /api/warren/cluster (Warren's own endpoint), one row per member.
func ctlCluster(c *ctlClient, o ctlOptions, args []string, stdout io.Writer) error {
	if len(args) != 1 || args[0] != "status" {
		return ctlUsageError("usage: warren ctl cluster status")
	}
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
