// Package raftlog sends hashicorp/raft's log lines to zerolog, for every Raft group of a node
// (the metadata group in server/cluster, the quorum queues' groups in server/cluster/quorum).
package raftlog

import (
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/rs/zerolog"
)

// New is an hclog.Logger for raft that logs the lines at level and above to log, each as a
// warning with component=raft.
func New(log zerolog.Logger, level hclog.Level) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "raft", Level: level, Output: lineWriter{log}, DisableTime: true})
}

// lineWriter logs each line written to it.
type lineWriter struct{ log zerolog.Logger }

func (w lineWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		if line != "" {
			w.log.Warn().Str("component", "raft").Msg(line)
		}
	}
	return len(p), nil
}
