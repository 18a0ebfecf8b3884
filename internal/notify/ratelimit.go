package notify

import (
	"sync"
	"time"
)

// limiter is an in-memory sliding-window log: per channel and incident,
// and per channel over all incidents. Only allowed sends are recorded, so
// a channel holds at most perHour timestamps and the memory is bounded
// whatever the number of incidents. Limits reset when the process
// restarts, which at worst sends a few more mails.
type limiter struct {
	mu          sync.Mutex
	perIncident int
	perHour     int
	window      time.Duration
	incident    map[incidentKey]*windowLog
	channel     map[string]*windowLog
}

type incidentKey struct {
	channel string
	id      int64
}

// windowLog holds the times of the sends within the window, oldest first,
// and whether a skip was already logged since the window last had room.
type windowLog struct {
	times  []time.Time
	warned bool
}

func newLimiter(perIncident, perHour int, window time.Duration) *limiter {
	return &limiter{
		perIncident: perIncident,
		perHour:     perHour,
		window:      window,
		incident:    map[incidentKey]*windowLog{},
		channel:     map[string]*windowLog{},
	}
}

// prune drops the times that left the window.
func (w *windowLog) prune(cutoff time.Time) {
	i := 0
	for i < len(w.times) && !w.times[i].After(cutoff) {
		i++
	}
	if i > 0 {
		w.times = append(w.times[:0], w.times[i:]...)
	}
}

// allow records a send on channel for incident id at now if both limits
// have room. Otherwise it reports the limit that was hit ("per-incident"
// or "per-hour") and whether this is the first skip for that limit since
// it last had room, so the caller logs a storm once.
func (l *limiter) allow(channel string, id int64, now time.Time) (ok bool, scope string, first bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	cutoff := now.Add(-l.window)
	for k, w := range l.incident {
		if k.channel == channel {
			w.prune(cutoff)
			if len(w.times) == 0 { // the window has room again
				delete(l.incident, k)
			}
		}
	}
	ch := l.channel[channel]
	if ch == nil {
		ch = &windowLog{}
		l.channel[channel] = ch
	}
	ch.prune(cutoff)
	key := incidentKey{channel, id}
	inc := l.incident[key]
	if inc == nil {
		inc = &windowLog{}
		l.incident[key] = inc
	}
	skip := func(w *windowLog, scope string) (bool, string, bool) {
		first := !w.warned
		w.warned = true
		return false, scope, first
	}
	if len(inc.times) >= l.perIncident {
		return skip(inc, "per-incident")
	}
	inc.warned = false
	if len(ch.times) >= l.perHour {
		return skip(ch, "per-hour")
	}
	ch.warned = false
	inc.times = append(inc.times, now)
	ch.times = append(ch.times, now)
	return true, "", false
}
