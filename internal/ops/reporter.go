package ops

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Reporter hands findings to ReportMany off the request path. Add never
// blocks; what waits is kept per account, each message's finding once, and
// the worker takes all of it at once after letting a burst gather, so that
// one transaction carries a spam run's thousands of findings. Nothing that
// could change an incident is dropped: past maxPendingPerAccount findings
// an account keeps only those whose reason is not already waiting (an
// incident keeps at most store.MaxEvidence pieces of evidence anyway).
type Reporter struct {
	s      *Service
	gather time.Duration
	onErr  func(error)

	mu       sync.Mutex
	pending  map[string]*pendingFindings
	order    []string
	closed   bool
	wake     chan struct{}
	stopping chan struct{} // closed by Close: stop gathering
	done     chan struct{}
}

// maxPendingPerAccount bounds the findings waiting for one account.
const maxPendingPerAccount = 256

type pendingFindings struct {
	findings []Finding
	seen     map[findingKey]bool
	reasons  map[string]bool
}

// findingKey tells findings apart: by message and reason, and for a
// finding of no message also by what it says.
type findingKey struct{ queueID, reason, detail string }

func keyOf(f Finding) findingKey {
	k := findingKey{queueID: f.QueueID, reason: f.Reason}
	if f.QueueID == "" {
		k.detail = f.Detail
	}
	return k
}

// NewReporter starts a reporter for s; gather is how long it lets findings
// gather after the first. onErr (may be nil) learns of failed writes.
func NewReporter(s *Service, gather time.Duration, onErr func(error)) *Reporter {
	r := &Reporter{s: s, gather: gather, onErr: onErr, pending: map[string]*pendingFindings{},
		wake: make(chan struct{}, 1), stopping: make(chan struct{}), done: make(chan struct{})}
	go r.run()
	return r
}

// Add queues a message's acted-on findings against account.
func (r *Reporter) Add(account string, fs []Finding) {
	if account == "" || len(fs) == 0 {
		return
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		// Stopping: nothing is served any more; write it now.
		r.report(context.Background(), []Report{{Account: account, Findings: fs}})
		return
	}
	r.queue(account, fs)
	r.mu.Unlock()
	r.poke()
}

// poke wakes the worker unless the reporter is closed.
func (r *Reporter) poke() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// queue adds fs to what waits for account; r.mu is held.
func (r *Reporter) queue(account string, fs []Finding) {
	p := r.pending[account]
	if p == nil {
		p = &pendingFindings{seen: map[findingKey]bool{}, reasons: map[string]bool{}}
		r.pending[account] = p
		r.order = append(r.order, account)
	}
	for _, f := range fs {
		k := keyOf(f)
		if p.seen[k] || len(p.findings) >= maxPendingPerAccount && p.reasons[f.Reason] {
			continue
		}
		p.seen[k], p.reasons[f.Reason] = true, true
		p.findings = append(p.findings, f)
	}
}

// Retry bounds: a batch the store did not take (PostgreSQL down) is kept
// and tried again after a back-off that doubles up to reportRetryMax.
const (
	reportRetryMin = 500 * time.Millisecond
	reportRetryMax = 30 * time.Second
)

// take returns what waits and empties the queue.
func (r *Reporter) take() []Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Report, 0, len(r.order))
	for _, a := range r.order {
		out = append(out, Report{Account: a, Findings: r.pending[a].findings})
	}
	r.pending, r.order = map[string]*pendingFindings{}, nil
	return out
}

func (r *Reporter) run() {
	defer close(r.done)
	var backoff time.Duration
	for {
		_, open := <-r.wake
		if open {
			t := time.NewTimer(r.gather) // let a burst gather
			select {
			case <-t.C:
			case <-r.stopping:
				t.Stop()
			}
		}
		batch := r.take()
		if len(batch) > 0 && r.report(context.Background(), batch) != nil && open {
			// Kept (bounded per account, as what waits) and tried again:
			// a hold written just before the store went away still
			// reaches its incident.
			r.mu.Lock()
			for _, b := range batch {
				r.queue(b.Account, b.Findings)
			}
			r.mu.Unlock()
			backoff = min(max(2*backoff, reportRetryMin), reportRetryMax)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-r.stopping:
				t.Stop()
			}
			r.poke()
			continue
		}
		if len(batch) > 0 {
			backoff = 0
		}
		if !open {
			return
		}
	}
}

func (r *Reporter) report(ctx context.Context, batch []Report) error {
	err := r.s.ReportMany(ctx, batch)
	if err != nil {
		n := 0
		for _, b := range batch {
			n += len(b.Findings)
		}
		r.s.Log.Error("recording incident findings failed; kept and tried again (not at a stop)", "accounts", len(batch), "findings", n, "err", err)
		if r.onErr != nil {
			r.onErr(err)
		}
	}
	return err
}

// Close writes what waits and stops the worker. Add after Close writes at
// once.
func (r *Reporter) Close(ctx context.Context) error {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.stopping)
		close(r.wake)
	}
	r.mu.Unlock()
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("incident findings not yet written: %w", ctx.Err())
	}
}
