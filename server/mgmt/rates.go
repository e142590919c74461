package mgmt

import (
	"context"
	"strings"
	"sync"
	"time"
)

// Message rates as RabbitMQ's default "basic" rates mode computes them: a sample of every
// counter (and queue length) that a listing shows with a *_details object is taken every
// collect interval (RabbitMQ's collect_statistics_interval, 5 s), and each *_details.rate is
// the change between the last two samples per second. An object seen in one sample only
// has rate 0.0.

// defaultStatsInterval is RabbitMQ's collect_statistics_interval default.
const defaultStatsInterval = 5 * time.Second

// sample is every object's counters at one time: object key → dotted counter path → value.
type sample struct {
	at   time.Time
	vals map[string]map[string]float64
}

// rates holds the last two samples.
type rates struct {
	mu        sync.Mutex
	prev, cur sample
}

// record adds obj's counters under key to s: every field with a *_details sibling, in obj
// and in the objects it holds.
func record(s sample, key string, obj map[string]any) {
	vals := map[string]float64{}
	walkCounters(obj, "", func(path string, v float64) { vals[path] = v })
	s.vals[key] = vals
}

func walkCounters(obj map[string]any, prefix string, f func(path string, v float64)) {
	for k, v := range obj {
		if sub, ok := v.(map[string]any); ok {
			walkCounters(sub, prefix+k+".", f)
			continue
		}
		base, ok := strings.CutSuffix(k, "_details")
		if !ok {
			continue
		}
		if n, ok := obj[base]; ok && termRank(n) == 0 {
			f(prefix+base, toFloat(n))
		}
	}
}

// fill sets the rate of each *_details object in obj (and the objects it holds) from the
// samples of key.
func (r *rates) fill(key string, obj map[string]any) {
	r.mu.Lock()
	prev, cur := r.prev.vals[key], r.cur.vals[key]
	dt := r.cur.at.Sub(r.prev.at).Seconds()
	r.mu.Unlock()
	if prev == nil || cur == nil || dt <= 0 {
		return
	}
	fillRates(obj, "", prev, cur, dt)
}

func fillRates(obj map[string]any, prefix string, prev, cur map[string]float64, dt float64) {
	for k, v := range obj {
		if sub, ok := v.(map[string]any); ok {
			fillRates(sub, prefix+k+".", prev, cur, dt)
			continue
		}
		base, ok := strings.CutSuffix(k, "_details")
		if !ok {
			continue
		}
		p, okp := prev[prefix+base]
		c, okc := cur[prefix+base]
		if okp && okc {
			obj[k] = rate{Rate: (c - p) / dt}
		}
	}
}

// push makes s the newest sample.
func (r *rates) push(s sample) {
	r.mu.Lock()
	r.prev, r.cur = r.cur, s
	r.mu.Unlock()
}

// sampleLoop takes a sample every interval until ctx is done.
func (a *api) sampleLoop(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		a.takeSample()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// takeSample records the counters of everything a listing shows rates for, as an
// administrator sees it.
func (a *api) takeSample() {
	s := sample{at: time.Now(), vals: map[string]map[string]float64{}}
	admin := user{tags: []string{"administrator"}}
	ql := queueLists{}
	record(s, "overview", a.overviewJSON(admin, ql))
	for _, v := range a.src.Vhosts() {
		record(s, vhostKey(v.Name()), a.vhostJSON(v, ql))
		for _, q := range ql.of(v) {
			m := map[string]any{} // only the counters: a sample of many queues stays cheap
			queueCounters(m, q)
			record(s, queueKey(v.Name(), q.Name), m)
		}
		for _, x := range v.Exchanges() {
			record(s, exchangeKey(v.Name(), x.Name), a.exchangeJSON(v.Name(), x))
		}
	}
	for _, c := range a.src.Connections() {
		record(s, connectionKey(c.Name), a.connectionJSON(c))
	}
	for _, ch := range a.src.Channels() {
		record(s, channelKey(ch.Name()), a.channelJSON(ch))
	}
	a.rates.push(s)
}
