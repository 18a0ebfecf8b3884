package redisnovelty

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/mailbrake/mailbrake/internal/novelty"
)

// Failover records messages in a Memory and, while Redis does not answer,
// keeps them to be recorded when it does: the outage's recipients are
// known afterwards, so they do not all look first-time once Redis is
// back. Meanwhile a message gets no novelty (ok false): this node alone
// knows none of the account's correspondents, and calling them all
// first-time would be arithmetic, not evidence. As counter.Failover, it
// makes no network attempt per message during an outage: one message
// every RetryEvery tries Redis again.
type Failover struct {
	M   *Memory
	Log *slog.Logger
	// Degraded, when set, is told when recording stops (true) and resumes
	// (false): the metric.
	Degraded   func(bool)
	RetryEvery time.Duration // 0: 5 s
	// MaxPending bounds the messages kept during an outage (0: 100,000);
	// beyond it the oldest are not recorded.
	MaxPending int

	mu       sync.Mutex
	degraded bool
	trying   bool
	nextTry  time.Time
	pending  []pendingMsg
	dropped  int
	replay   sync.WaitGroup
}

type pendingMsg struct {
	account string
	rs      []novelty.Recipient
	at      time.Time
}

func (f *Failover) retryEvery() time.Duration {
	if f.RetryEvery > 0 {
		return f.RetryEvery
	}
	return 5 * time.Second
}

// route says whether this message goes to Redis (try: a retry during an
// outage).
func (f *Failover) route() (shared, try bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.degraded {
		return true, false
	}
	if f.trying || time.Now().Before(f.nextTry) {
		return false, false
	}
	f.trying = true
	return true, true
}

// Observe records the message and returns its novelty; ok is false while
// Redis does not answer (the message is recorded when it does). err is
// set only when this node may not share the memory at all
// (ErrOtherKey).
func (f *Failover) Observe(ctx context.Context, account string, recipients []string, at time.Time) (st novelty.Stats, ok bool, err error) {
	shared, try := f.route()
	if shared {
		st, err = f.M.Observe(ctx, account, recipients, at)
		if errors.Is(err, ErrOtherKey) {
			f.settle(try, false)
			return st, false, err
		}
		if f.settle(try, err == nil) {
			return st, true, nil
		}
		if ctx.Err() != nil {
			// The caller gave up (the client left): not an outage, and
			// whether the script ran is unknown. Keeping it would count
			// the message twice if it did.
			return novelty.Stats{}, false, nil
		}
		if !f.degradedNow() {
			f.Log.Warn("cluster: Redis does not answer; messages get no recipient novelty until it does, and are recorded then", "err", err)
		}
		f.setDegraded(true)
	}
	_, rs := f.M.Prepare(account, recipients)
	f.keep(pendingMsg{account: account, rs: rs, at: at})
	return novelty.Stats{}, false, nil
}

// settle ends a retry and, when Redis answered, leaves the outage and
// records what was kept. It reports whether Redis answered.
func (f *Failover) settle(try, answered bool) bool {
	f.mu.Lock()
	if try {
		f.trying = false
		if !answered {
			f.nextTry = time.Now().Add(f.retryEvery())
		}
	}
	was := f.degraded
	if answered && was {
		f.degraded = false
	}
	var todo []pendingMsg
	dropped := 0
	if answered && was {
		todo, f.pending = f.pending, nil
		dropped, f.dropped = f.dropped, 0
	}
	f.mu.Unlock()
	if answered && was {
		if f.Degraded != nil {
			f.Degraded(false)
		}
		f.Log.Info("cluster: Redis answers again; recording the outage's messages", "messages", len(todo), "not_kept", dropped)
		f.replay.Go(func() { f.record(todo) })
	}
	return answered
}

func (f *Failover) degradedNow() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.degraded
}

func (f *Failover) setDegraded(on bool) {
	f.mu.Lock()
	changed := f.degraded != on
	f.degraded = on
	if on && changed {
		f.nextTry = time.Now().Add(f.retryEvery())
	}
	f.mu.Unlock()
	if changed && f.Degraded != nil {
		f.Degraded(on)
	}
}

func (f *Failover) keep(p pendingMsg) {
	max := f.MaxPending
	if max <= 0 {
		max = 100_000
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.pending) >= max {
		f.pending = f.pending[1:]
		f.dropped++
	}
	f.pending = append(f.pending, p)
}

// record writes messages kept during an outage, in the order they came;
// what fails (Redis gone again) is kept again.
func (f *Failover) record(todo []pendingMsg) {
	for i, p := range todo {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := f.M.Record(ctx, p.account, p.rs, p.at)
		cancel()
		if err != nil {
			f.Log.Warn("cluster: recording the outage's messages stopped; kept for the next attempt", "left", len(todo)-i, "err", err)
			f.mu.Lock()
			f.pending = append(todo[i:len(todo):len(todo)], f.pending...)
			f.mu.Unlock()
			f.setDegraded(true)
			return
		}
	}
}

// Pending returns how many messages wait to be recorded.
func (f *Failover) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pending)
}

// Peek returns the account's windows; ok is false while Redis does not
// answer.
func (f *Failover) Peek(ctx context.Context, account string, at time.Time) (novelty.Stats, bool) {
	if f.degradedNow() {
		return novelty.Stats{}, false
	}
	st, err := f.M.Peek(ctx, account, at)
	return st, err == nil
}

// Since returns when the cluster started recording novelty.
func (f *Failover) Since() time.Time { return f.M.Since() }

// Close waits for a replay under way.
func (f *Failover) Close() { f.replay.Wait() }
