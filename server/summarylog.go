package server

import (
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// summaryOther is the key that events are counted under once a summaryLog tracks maxKeys keys.
const summaryOther = "(other)"

// summaryLog keeps events that can flood (refused logins, refused connections) to a bounded
// number of log lines: the first event of a key is logged by the caller as usual, and the
// events of that key that follow within the interval are counted and logged as one summary
// line per key per interval. A key with no event for a whole interval starts over.
type summaryLog struct {
	log     zerolog.Logger
	msg     string // the summary line's message
	field   string // the name of the key's field
	every   time.Duration
	maxKeys int

	mu      sync.Mutex
	windows map[string]*summaryWindow
	timer   *time.Timer // pending flush; nil when there is nothing to flush
	closed  bool
}

type summaryWindow struct {
	start  time.Time
	count  int    // events counted since start
	detail string // the last counted event's detail
}

func newSummaryLog(log zerolog.Logger, msg, field string, every time.Duration, maxKeys int) *summaryLog {
	return &summaryLog{log: log, msg: msg, field: field, every: every, maxKeys: maxKeys,
		windows: make(map[string]*summaryWindow)}
}

// note records one event for key. It returns true when the caller should log the event in
// full (the first of its key in a while); otherwise the event is counted for the summary.
func (s *summaryLog) note(key, detail string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return true
	}
	w := s.windows[key]
	if w == nil {
		if len(s.windows) >= s.maxKeys {
			key = summaryOther
			w = s.windows[key]
		}
		if w == nil {
			w = &summaryWindow{start: now}
			s.windows[key] = w
			s.schedule()
			if key != summaryOther {
				return true
			}
		}
	}
	w.count++
	w.detail = detail
	return false
}

// schedule makes sure a flush is pending; called with mu held.
func (s *summaryLog) schedule() {
	if s.timer == nil {
		s.timer = time.AfterFunc(s.every, s.flush)
	}
}

// flush logs one line per key with events counted in the interval and forgets the keys that
// had none.
func (s *summaryLog) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timer = nil
	now := time.Now()
	for key, w := range s.windows {
		if w.count == 0 {
			delete(s.windows, key)
			continue
		}
		s.log.Warn().Str(s.field, key).Int("count", w.count).Dur("interval", now.Sub(w.start)).
			Str("last", w.detail).Msg(s.msg)
		w.start, w.count, w.detail = now, 0, ""
	}
	if len(s.windows) > 0 && !s.closed {
		s.schedule()
	}
}

// close logs what is still counted and stops the flush timer.
func (s *summaryLog) close() {
	s.mu.Lock()
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
	}
	s.mu.Unlock()
	s.flush()
}
