package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// reporter prints a progress line per interval and builds the summary.
type reporter struct {
	c         *config
	out       io.Writer
	stats     []counters
	consumers []*consumer
	broker    *procWatch
	start     time.Time

	lastAt                      time.Time
	lastPub, lastConf, lastCons int64
	scratch                     histogram
}

type totals struct {
	published, confirmed, nacked, consumed int64
	lastPub, lastConf, lastCons            int64
}

func (r *reporter) totals() totals {
	var t totals
	for i := range r.stats {
		s := &r.stats[i]
		t.published += s.published.Load()
		t.confirmed += s.confirmed.Load()
		t.nacked += s.nacked.Load()
		t.consumed += s.consumed.Load()
		t.lastPub = max(t.lastPub, s.lastPub.Load())
		t.lastConf = max(t.lastConf, s.lastConf.Load())
		t.lastCons = max(t.lastCons, s.lastCons.Load())
	}
	return t
}

func (r *reporter) tick(print bool) {
	now := time.Now()
	cores, rss := r.broker.sample()
	if !print {
		return
	}
	if r.lastAt.IsZero() {
		r.lastAt = r.start
	}
	t := r.totals()
	dt := now.Sub(r.lastAt).Seconds()
	r.scratch.reset()
	for _, w := range r.consumers {
		w.takeInterval(&r.scratch)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%6.1fs", now.Sub(r.start).Seconds())
	if r.c.Producers > 0 {
		fmt.Fprintf(&b, "  sent %8.0f/s", float64(t.published-r.lastPub)/dt)
		if r.c.Confirm > 0 {
			fmt.Fprintf(&b, "  confirmed %8.0f/s", float64(t.confirmed-r.lastConf)/dt)
		}
	}
	if r.c.Consumers > 0 {
		fmt.Fprintf(&b, "  received %8.0f/s", float64(t.consumed-r.lastCons)/dt)
		if r.scratch.n > 0 {
			fmt.Fprintf(&b, "  latency p50 %s p99 %s", ms(r.scratch.percentile(0.5)), ms(r.scratch.percentile(0.99)))
		}
	}
	if r.broker != nil && r.broker.err == nil {
		fmt.Fprintf(&b, "  broker cpu %3.0f%% rss %s", cores*100, mib(rss))
	}
	fmt.Fprintln(r.out, b.String())
	r.lastAt, r.lastPub, r.lastConf, r.lastCons = now, t.published, t.confirmed, t.consumed
}

func ms(ns int64) string { return fmt.Sprintf("%.2fms", float64(ns)/1e6) }

func mib(b int64) string { return fmt.Sprintf("%.0fMiB", float64(b)/(1<<20)) }

// summary is the final report; its JSON form is what --json prints.
type summary struct {
	Label      string  `json:"label,omitempty"`
	URL        string  `json:"url"`
	Producers  int     `json:"producers"`
	Consumers  int     `json:"consumers"`
	Queues     int     `json:"queues"`
	Size       int     `json:"size"`
	Persistent bool    `json:"persistent"`
	Confirm    int     `json:"confirm"`
	Prefetch   int     `json:"prefetch"`
	MultiAck   int     `json:"multi_ack"`
	AutoAck    bool    `json:"autoack"`
	Rate       float64 `json:"rate"`

	Exchange      string  `json:"exchange,omitempty"`
	ExchangeType  string  `json:"exchange_type,omitempty"`
	TopicBindings int     `json:"topic_bindings,omitempty"`
	BindTime      float64 `json:"bind_s,omitempty"` // time to bind the --topic-bindings

	Elapsed   float64 `json:"elapsed_s"`
	Published int64   `json:"published"`
	Confirmed int64   `json:"confirmed"`
	Nacked    int64   `json:"nacked"`
	Consumed  int64   `json:"consumed"`
	// Rates are counts over the time from the start to the last event of their kind, so a
	// drain ended by --idle-exit is not diluted by the idle wait.
	PublishRate float64 `json:"publish_rate"`
	ConfirmRate float64 `json:"confirm_rate"`
	ConsumeRate float64 `json:"consume_rate"`

	Latency *latencySummary `json:"latency_ms,omitempty"`
	Broker  *brokerSummary  `json:"broker,omitempty"`
	// ClientCPU is this process's CPU time over the run, to tell a client-bound run from a
	// broker-bound one.
	ClientCPU float64 `json:"client_cpu_s"`

	Idle *idleSummary `json:"idle_connections,omitempty"`
	// Error is the error that ended the run, if any (the figures may then be partial).
	Error string `json:"error,omitempty"`
}

type latencySummary struct {
	Count uint64  `json:"count"`
	Min   float64 `json:"min"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
}

type brokerSummary struct {
	PID         string  `json:"pid"`
	CPU         float64 `json:"cpu_s"`
	Cores       float64 `json:"cores"`
	MsgsPerCore float64 `json:"msgs_per_core_s"` // max(published, consumed) per broker CPU-second
	PeakRSS     float64 `json:"peak_rss_sampled_mib"`
	VmHWM       float64 `json:"vmhwm_mib"`
	EndRSS      float64 `json:"end_rss_mib"`
	// HWMReset says VmHWM was reset at the start (--reset-hwm), so it is this run's peak;
	// otherwise it is the peak of the broker's life so far.
	HWMReset bool `json:"vmhwm_reset"`
	// DiskWrite is what the broker caused to be written to storage during the run
	// (write_bytes of /proc/PID/io), in MiB, and DiskPerMsg that in KB per message
	// (published or consumed, whichever is more); absent when /proc/PID/io is unreadable.
	DiskWrite  *float64 `json:"disk_write_mib,omitempty"`
	DiskPerMsg *float64 `json:"disk_write_kb_per_msg,omitempty"`
}

func (r *reporter) finish(end time.Time, client *procWatch) *summary {
	c := r.c
	t := r.totals()
	s := &summary{Label: c.Label, URL: redactURL(c.URL), Exchange: c.Exchange, ExchangeType: c.ExchangeType, Producers: c.Producers, Consumers: c.Consumers, Queues: c.Queues,
		Size: c.Size, Persistent: c.Persistent, Confirm: c.Confirm, Prefetch: c.Prefetch, MultiAck: c.MultiAck,
		AutoAck: c.AutoAck, Rate: c.Rate, Elapsed: end.Sub(r.start).Seconds(),
		Published: t.published, Confirmed: t.confirmed, Nacked: t.nacked, Consumed: t.consumed}
	rate := func(n, last int64) float64 {
		if n == 0 || last == 0 {
			return 0
		}
		return float64(n) / time.Duration(last-r.start.UnixNano()).Seconds()
	}
	s.PublishRate = rate(t.published, t.lastPub)
	s.ConfirmRate = rate(t.confirmed, t.lastConf)
	s.ConsumeRate = rate(t.consumed, t.lastCons)

	var h histogram
	for _, w := range r.consumers {
		w.mu.Lock()
		h.merge(&w.total)
		w.mu.Unlock()
	}
	if h.n > 0 {
		f := func(ns int64) float64 { return float64(ns) / 1e6 }
		s.Latency = &latencySummary{Count: h.n, Min: f(h.min), Mean: h.mean() / 1e6, P50: f(h.percentile(0.5)),
			P99: f(h.percentile(0.99)), P999: f(h.percentile(0.999)), Max: f(h.max)}
	}
	if b := r.broker; b != nil && b.err == nil {
		b.sample()
		m, err := procMem(b.pid)
		if err == nil {
			cpu := (b.lastCPU - b.startCPU).Seconds()
			s.Broker = &brokerSummary{PID: b.pid, CPU: cpu, Cores: cpu / s.Elapsed,
				PeakRSS: float64(b.peakRSS) / (1 << 20), VmHWM: float64(m.HWM) / (1 << 20), EndRSS: float64(m.RSS) / (1 << 20)}
			if cpu > 0 {
				s.Broker.MsgsPerCore = float64(max(t.published, t.consumed)) / cpu
			}
			if wb, err := procWriteBytes(b.pid); err == nil && b.writeErr == nil {
				written := float64(wb - b.startWrite)
				mib := written / (1 << 20)
				s.Broker.DiskWrite = &mib
				if n := max(t.published, t.consumed); n > 0 {
					kb := written / 1e3 / float64(n)
					s.Broker.DiskPerMsg = &kb
				}
			}
		}
	}
	if client != nil && client.err == nil {
		if cpu, err := procCPU(client.pid); err == nil {
			s.ClientCPU = (cpu - client.startCPU).Seconds()
		}
	}
	return s
}

// setupFailed is the summary of a run that failed before it started: the settings and,
// once the caller fills it in, the error.
func setupFailed(c *config) *summary {
	return &summary{Label: c.Label, URL: redactURL(c.URL), Exchange: c.Exchange, ExchangeType: c.ExchangeType,
		Producers: c.Producers, Consumers: c.Consumers, Queues: c.Queues, Size: c.Size, Persistent: c.Persistent,
		Confirm: c.Confirm, Prefetch: c.Prefetch, MultiAck: c.MultiAck, AutoAck: c.AutoAck, Rate: c.Rate,
		TopicBindings: c.TopicBindings}
}

func (s *summary) writeJSON(w io.Writer) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func (s *summary) writeText(w io.Writer) {
	mode := "transient"
	if s.Persistent {
		mode = "persistent"
	}
	if s.Label != "" {
		fmt.Fprintf(w, "%s\n", s.Label)
	}
	idleOnly := s.Producers == 0 && s.Consumers == 0
	if idleOnly {
		fmt.Fprintf(w, "summary: %s, idle connections only\n", s.URL)
	} else {
		fmt.Fprintf(w, "summary: %s, %d producers, %d consumers, %d queues, %d B %s, confirm %d, prefetch %d, multi-ack %d, autoack %v\n",
			s.URL, s.Producers, s.Consumers, s.Queues, s.Size, mode, s.Confirm, s.Prefetch, s.MultiAck, s.AutoAck)
	}
	if s.Exchange != "" {
		fmt.Fprintf(w, "  exchange    %s (%s)", s.Exchange, s.ExchangeType)
		if s.TopicBindings > 0 {
			fmt.Fprintf(w, ", %d bindings made in %.2f s", s.TopicBindings, s.BindTime)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  elapsed     %.2f s\n", s.Elapsed)
	if !idleOnly {
		fmt.Fprintf(w, "  published   %d msgs, %.0f msg/s\n", s.Published, s.PublishRate)
		if s.Confirm > 0 {
			fmt.Fprintf(w, "  confirmed   %d msgs, %.0f msg/s (nacked %d)\n", s.Confirmed, s.ConfirmRate, s.Nacked)
		}
		fmt.Fprintf(w, "  consumed    %d msgs, %.0f msg/s\n", s.Consumed, s.ConsumeRate)
	}
	if l := s.Latency; l != nil {
		fmt.Fprintf(w, "  latency     min %.3f  p50 %.3f  p99 %.3f  p99.9 %.3f  max %.3f ms (mean %.3f, n=%d)\n",
			l.Min, l.P50, l.P99, l.P999, l.Max, l.Mean, l.Count)
	}
	if b := s.Broker; b != nil {
		fmt.Fprintf(w, "  broker %s  cpu %.2f s (%.2f cores), %.0f msgs per core-second; rss peak %.0f MiB (sampled), VmHWM %.0f MiB, at end %.0f MiB\n",
			b.PID, b.CPU, b.Cores, b.MsgsPerCore, b.PeakRSS, b.VmHWM, b.EndRSS)
		if b.DiskWrite != nil {
			fmt.Fprintf(w, "              disk written %.0f MiB", *b.DiskWrite)
			if b.DiskPerMsg != nil {
				fmt.Fprintf(w, " (%.1f KB per message)", *b.DiskPerMsg)
			}
			fmt.Fprintln(w)
		}
	}
	fmt.Fprintf(w, "  client      cpu %.2f s (%.2f cores)\n", s.ClientCPU, s.ClientCPU/s.Elapsed)
	if d := s.Idle; d != nil {
		fmt.Fprintf(w, "  idle        %d of %d connections opened in %.2f s (%d failed), heartbeat %.0f s, %d still open at the end; client rss %.0f MiB\n",
			d.Opened, d.Requested, d.OpenTime, d.Failed, d.Heartbeat, d.StillOpen, d.ClientRSS)
		if d.FirstError != "" {
			fmt.Fprintf(w, "              first error: %s\n", d.FirstError)
		}
		if b := d.Broker; b != nil {
			fmt.Fprintf(w, "  idle broker rss %.0f MiB before, %.0f after opening, %.0f at the end (%.1f KiB per connection); VmHWM %.0f / %.0f / %.0f MiB; fd limit %d\n",
				b.RSSBefore, b.RSSAfterOpen, b.RSSEnd, b.KiBPerConn, b.HWMBefore, b.HWMAfterOpen, b.HWMEnd, b.FDLimit)
		}
	}
	if s.Error != "" {
		fmt.Fprintf(w, "  error       %s\n", s.Error)
	}
}
