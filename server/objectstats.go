package server

import (
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Per-object figures of connections and channels, for the Prometheus endpoint's per-object
// and detailed metrics. They are read at scrape time; the message path pays nothing for them.

// channelSet is the open channels. A channel's own state belongs to its connection's reader
// goroutine; the set lets a scrape reach the part of it kept under the channel's mutex.
type channelSet struct {
	mu sync.Mutex
	m  map[*channel]struct{}
}

func (cs *channelSet) add(ch *channel) {
	cs.mu.Lock()
	if cs.m == nil {
		cs.m = make(map[*channel]struct{})
	}
	cs.m[ch] = struct{}{}
	cs.mu.Unlock()
}

func (cs *channelSet) remove(ch *channel) {
	cs.mu.Lock()
	delete(cs.m, ch)
	cs.mu.Unlock()
}

func (cs *channelSet) list() []*channel {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	out := make([]*channel, 0, len(cs.m))
	for ch := range cs.m {
		out = append(out, ch)
	}
	return out
}

// ChannelStats is one open channel's figures now.
type ChannelStats struct {
	// Name is the management API's channel name: the connection's name and the channel
	// number, "127.0.0.1:54321 -> 127.0.0.1:5672 (1)". Connection is the connection's name.
	Name, Connection string
	// Consumers on the channel; Unacked deliveries to them and by basic.get not yet settled.
	Consumers, Unacked int
	// Prefetch is basic.qos's per-consumer limit for new consumers (global=false),
	// GlobalPrefetch the channel-wide one (global=true); 0 is none.
	Prefetch, GlobalPrefetch int
}

// ChannelStats lists the open channels by name.
func (s *Server) ChannelStats() []ChannelStats {
	chans := s.chans.list()
	out := make([]ChannelStats, 0, len(chans))
	for _, ch := range chans {
		conn := connectionName(ch.conn.nc.RemoteAddr(), ch.conn.nc.LocalAddr())
		st := ChannelStats{Name: conn + " (" + strconv.Itoa(int(ch.id)) + ")", Connection: conn}
		ch.mu.Lock()
		released := ch.released
		st.Consumers, st.Unacked = len(ch.consumers), ch.unacked.live
		st.Prefetch, st.GlobalPrefetch = int(ch.prefetchCount), int(ch.globalLimit)
		ch.mu.Unlock()
		if !released {
			out = append(out, st)
		}
	}
	slices.SortFunc(out, func(a, b ChannelStats) int { return strings.Compare(a.Name, b.Name) })
	return out
}
