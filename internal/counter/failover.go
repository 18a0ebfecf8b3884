package counter

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/mailbrake/mailbrake/internal/store"
)

// Failover charges shared counters (cluster mode's Redis) and, while they
// fail, counters in this process: mail keeps being decided with the
// counts of this node since the outage began, without a network attempt
// per message. Every RetryEvery one charge tries the shared counters
// again; once they answer, what was charged here meanwhile (per account
// and minute) is added to them, so the shared counts catch up with the
// outage, and the node counts there again.
type Failover struct {
	Shared store.Counters
	Log    *slog.Logger
	// Degraded, when set, is told when counting moves here (true) and back
	// (false): the metric.
	Degraded   func(bool)
	RetryEvery time.Duration // 0: 5 s
	Now        func() time.Time

	mu       sync.Mutex
	local    *Memory
	degraded bool
	trying   bool
	nextTry  time.Time
	pending  map[pendingKey]*pendingAmount
	keyed    map[keyedKey]*keyedCharge
	replay   sync.WaitGroup
}

type pendingKey struct {
	acct   string
	minute int64
}

type pendingAmount struct{ m, r int64 }

// keyedKey is a message of an account: what it was charged here is
// replayed under its message key, so that the shared counters add only
// what they do not have of it — a charge they carried out and answered
// too late (a timeout), or the message's other protocol path charged
// there, is not counted twice.
type keyedKey struct{ acct, msgKey string }

// keyedCharge is a message's largest report here and when it was made.
type keyedCharge struct {
	t    time.Time
	m, r int64
}

// maxKeyed bounds the messages remembered one by one during an outage;
// beyond it, charges are kept per account and minute (replayed without a
// message key).
const maxKeyed = 200_000

var (
	_ store.Counters     = (*Failover)(nil)
	_ store.AsyncCharger = (*Failover)(nil)
	_ store.PeekCharger  = (*Failover)(nil)
)

func (f *Failover) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// route says where this call counts: shared (try says it is a retry after
// an outage) or local.
func (f *Failover) route() (shared, try bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.degraded {
		return true, false
	}
	if f.trying || f.now().Before(f.nextTry) {
		return false, false
	}
	f.trying = true
	return true, true
}

// Charge implements store.Counters.
func (f *Failover) Charge(ctx context.Context, acct, msgKey string, t time.Time, msgs, rcpts int64) (store.Totals, error) {
	if shared, try := f.route(); shared {
		tot, err := f.Shared.Charge(ctx, acct, msgKey, t, msgs, rcpts)
		if f.answered(ctx, err, try) {
			return tot, nil
		}
	}
	return f.chargeLocal(ctx, acct, msgKey, t, msgs, rcpts, false)
}

// ChargeAsync implements store.AsyncCharger: sent without waiting when
// the shared counters can (and are answering); a charge they fail is
// counted here instead, as any charge during an outage.
func (f *Failover) ChargeAsync(ctx context.Context, acct, msgKey string, t time.Time, msgs, rcpts int64, done func(error)) {
	a, ok := f.Shared.(store.AsyncCharger)
	if shared, try := f.route(); shared && ok && !try {
		a.ChargeAsync(ctx, acct, msgKey, t, msgs, rcpts, func(err error) {
			if f.answered(context.Background(), err, false) {
				done(nil)
				return
			}
			_, lerr := f.chargeLocal(context.Background(), acct, msgKey, t, msgs, rcpts, true)
			done(lerr)
		})
		return
	} else if try {
		f.mu.Lock()
		f.trying = false // route handed this call the retry: give it back
		f.mu.Unlock()
	}
	_, err := f.Charge(ctx, acct, msgKey, t, msgs, rcpts)
	done(err)
}

// PeekCharge implements store.PeekCharger: charged in the shared counters
// when they answer (and can); else the totals are this process's and
// nothing is charged (charged false: the caller charges after deciding).
func (f *Failover) PeekCharge(ctx context.Context, acct string, t time.Time, msgs, rcpts int64) (store.Totals, bool, error) {
	p, ok := f.Shared.(store.PeekCharger)
	if shared, try := f.route(); shared && ok && !try {
		tot, charged, err := p.PeekCharge(ctx, acct, t, msgs, rcpts)
		if f.answered(ctx, err, false) {
			return tot, charged, nil
		}
	} else if try {
		f.mu.Lock()
		f.trying = false // route handed this call the retry: give it back
		f.mu.Unlock()
	}
	tot, err := f.Peek(ctx, acct, t)
	return tot, false, err
}

// Refund implements store.PeekCharger: the shared counters took the
// charge, so they take it back; when they fail to, the recipient stays
// counted there (an account counted one recipient high for the hour,
// never low).
func (f *Failover) Refund(ctx context.Context, acct string, t time.Time, msgs, rcpts int64, done func(error)) {
	p, ok := f.Shared.(store.PeekCharger)
	if !ok {
		done(nil)
		return
	}
	p.Refund(ctx, acct, t, msgs, rcpts, func(err error) {
		f.answered(context.Background(), err, false)
		done(err)
	})
}

// chargeLocal counts in this process and remembers the amounts for the
// shared counters. A call routed here just before the shared counters
// answered again goes to them instead: what is remembered now would wait
// for the next outage's end. inCallback: called from the shared counters'
// own completion callback, which must not wait for them.
func (f *Failover) chargeLocal(ctx context.Context, acct, msgKey string, t time.Time, msgs, rcpts int64, inCallback bool) (store.Totals, error) {
	f.mu.Lock()
	if !f.degraded && ctx.Err() == nil {
		f.mu.Unlock()
		if inCallback {
			f.replay.Add(1)
			go func() {
				defer f.replay.Done()
				f.chargeLocal(context.Background(), acct, msgKey, t, msgs, rcpts, false)
			}()
			return store.Totals{}, nil
		}
		tot, err := f.Shared.Charge(ctx, acct, msgKey, t, msgs, rcpts)
		if f.answered(ctx, err, false) {
			return tot, nil
		}
		f.mu.Lock()
	}
	defer f.mu.Unlock()
	if f.local == nil {
		f.local = NewMemory()
	}
	before, _ := f.local.Peek(ctx, acct, t)
	tot, err := f.local.Charge(ctx, acct, msgKey, t, msgs, rcpts)
	if msgKey != "" {
		k := keyedKey{acct, msgKey}
		if c := f.keyed[k]; c != nil {
			c.m, c.r, c.t = max(c.m, msgs), max(c.r, rcpts), t
			return tot, err
		}
		if len(f.keyed) < maxKeyed {
			if f.keyed == nil {
				f.keyed = map[keyedKey]*keyedCharge{}
			}
			f.keyed[k] = &keyedCharge{t: t, m: msgs, r: rcpts}
			return tot, err
		}
	}
	// What this charge added (a message key adds only what exceeds its
	// earlier reports): replayed into the shared counters later.
	if dm, dr := tot.Messages24h-before.Messages24h, tot.Recipients24h-before.Recipients24h; dm > 0 || dr > 0 {
		k := pendingKey{acct, t.Unix() / 60}
		p := f.pending[k]
		if p == nil {
			if f.pending == nil {
				f.pending = map[pendingKey]*pendingAmount{}
			}
			p = &pendingAmount{}
			f.pending[k] = p
		}
		p.m += dm
		p.r += dr
	}
	return tot, err
}

// Peek implements store.Counters.
func (f *Failover) Peek(ctx context.Context, acct string, t time.Time) (store.Totals, error) {
	if shared, try := f.route(); shared {
		tot, err := f.Shared.Peek(ctx, acct, t)
		if f.answered(ctx, err, try) {
			return tot, nil
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.local == nil {
		return store.Totals{}, nil
	}
	return f.local.Peek(ctx, acct, t)
}

// answered records the outcome of a call to the shared counters and says
// whether it answered. A caller's own cancellation is not an outage.
func (f *Failover) answered(ctx context.Context, err error, try bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if try {
		f.trying = false
	}
	if err != nil && ctx.Err() != nil {
		return false
	}
	if err != nil {
		f.nextTry = f.now().Add(f.retryEvery())
		if !f.degraded {
			f.degraded = true
			f.log().Warn("shared counters do not answer: counting in this process until they do", "err", err)
			if f.Degraded != nil {
				f.Degraded(true)
			}
		}
		return false
	}
	if f.degraded {
		f.degraded = false
		pending, keyed := f.pending, f.keyed
		f.pending, f.keyed, f.local = nil, nil, nil
		f.log().Info("shared counters answer again: adding what was counted here meanwhile", "account_minutes", len(pending), "messages", len(keyed))
		if f.Degraded != nil {
			f.Degraded(false)
		}
		f.replay.Add(1)
		go f.replayPending(pending, keyed)
	}
	return true
}

// replayPending adds what was charged locally to the shared counters, at
// the minute it was charged. A failure puts the rest back for the next
// recovery.
func (f *Failover) replayPending(pending map[pendingKey]*pendingAmount, keyed map[keyedKey]*keyedCharge) {
	defer f.replay.Done()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	failed := 0
	// Messages under their keys: the shared counters add what exceeds
	// what they have of each (sent without waiting where they can, so a
	// long outage's messages go in pipelines).
	var mu sync.Mutex
	var wg sync.WaitGroup
	putBack := func(k keyedKey, c *keyedCharge) {
		f.mu.Lock()
		if f.keyed == nil {
			f.keyed = map[keyedKey]*keyedCharge{}
		}
		if q := f.keyed[k]; q != nil {
			q.m, q.r = max(q.m, c.m), max(q.r, c.r)
		} else {
			f.keyed[k] = c
		}
		f.mu.Unlock()
		mu.Lock()
		failed++
		mu.Unlock()
	}
	a, async := f.Shared.(store.AsyncCharger)
	for k, c := range keyed {
		if async {
			wg.Add(1)
			a.ChargeAsync(ctx, k.acct, k.msgKey, c.t, c.m, c.r, func(err error) {
				defer wg.Done()
				if err != nil {
					putBack(k, c)
				}
			})
			continue
		}
		if _, err := f.Shared.Charge(ctx, k.acct, k.msgKey, c.t, c.m, c.r); err != nil {
			putBack(k, c)
		}
	}
	wg.Wait()
	for k, p := range pending {
		if _, err := f.Shared.Charge(ctx, k.acct, "", time.Unix(k.minute*60, 0), p.m, p.r); err != nil {
			f.mu.Lock()
			if f.pending == nil {
				f.pending = map[pendingKey]*pendingAmount{}
			}
			if q := f.pending[k]; q != nil {
				q.m, q.r = q.m+p.m, q.r+p.r
			} else {
				f.pending[k] = p
			}
			f.mu.Unlock()
			failed++
			continue
		}
		delete(pending, k)
	}
	if failed > 0 {
		f.log().Warn("shared counters: some of what was counted here during the outage is not added yet; retried at the next recovery", "account_minutes_or_messages", failed)
	}
}

// WaitReplay waits until the counts of past outages are added (tests,
// stopping).
func (f *Failover) WaitReplay() { f.replay.Wait() }

// Degraded reports whether counting is in this process now.
func (f *Failover) IsDegraded() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.degraded
}

// Series returns the shared counters' series when they chart (the
// account page), else nil.
func (f *Failover) Series(acct string, t time.Time) []Point {
	if s, ok := f.Shared.(interface {
		Series(string, time.Time) []Point
	}); ok {
		return s.Series(acct, t)
	}
	return nil
}

func (f *Failover) retryEvery() time.Duration {
	if f.RetryEvery > 0 {
		return f.RetryEvery
	}
	return 5 * time.Second
}

func (f *Failover) log() *slog.Logger {
	if f.Log != nil {
		return f.Log
	}
	return slog.New(slog.DiscardHandler)
}
