package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
	s       *Service
	gather  time.Duration
	onErr   func(error)
	spool   string        // file keeping what the store did not take; "": none
	timeout time.Duration // one batch's writing (reportTimeout)

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
// spool, when not empty, is a file where the findings the store did not
// take are kept while it does not answer (rewritten whole at each failed
// try, removed once they are written), so that a process killed during
// an outage does not lose them: the next one reads it at start.
func NewReporter(s *Service, gather time.Duration, onErr func(error), spool string) *Reporter {
	r := &Reporter{s: s, gather: gather, onErr: onErr, spool: spool, timeout: reportTimeout, pending: map[string]*pendingFindings{},
		wake: make(chan struct{}, 1), stopping: make(chan struct{}), done: make(chan struct{})}
	if spool != "" {
		r.loadSpool()
	}
	loaded := len(r.order) > 0
	go r.run(loaded)
	if loaded {
		r.poke()
	}
	return r
}

// maxSpoolFindingsBytes bounds the findings spool file read at start.
const maxSpoolFindingsBytes = 64 << 20

// loadSpool queues the findings a previous process kept in its spool; a
// file that cannot be read is set aside (".bad") with an error naming it.
func (r *Reporter) loadSpool() {
	b, err := os.ReadFile(r.spool)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	var reports []Report
	if err == nil {
		reports, err = DecodeSpooledFindings(b)
	}
	if err != nil {
		r.s.Log.Error("the spooled incident findings cannot be read; set aside", "file", r.spool, "err", err)
		os.Rename(r.spool, r.spool+".bad")
		return
	}
	n := 0
	for _, rep := range reports {
		r.queue(rep.Account, rep.Findings)
		n += len(rep.Findings)
	}
	if n > 0 {
		r.s.Log.Info("incident findings kept before the last stop: written as soon as the store answers", "findings", n, "file", r.spool)
	}
}

// decodeStrict decodes one JSON value of a spool file of at most max
// bytes into v: no field v does not have, nothing after it.
func decodeStrict(b []byte, max int, v any) error {
	if len(b) > max {
		return fmt.Errorf("%d bytes, over %d", len(b), max)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the list")
	}
	return nil
}

// DecodeSpooledFindings reads the findings spool file: a JSON list of
// reports, each with an account and at least one finding with a reason.
func DecodeSpooledFindings(b []byte) ([]Report, error) {
	var reports []Report
	if err := decodeStrict(b, maxSpoolFindingsBytes, &reports); err != nil {
		return nil, err
	}
	for _, rep := range reports {
		if rep.Account == "" || len(rep.Findings) == 0 {
			return nil, errors.New("a report without an account or findings")
		}
		for _, f := range rep.Findings {
			if f.Reason == "" || f.HoldID < 0 {
				return nil, errors.New("a finding without a reason")
			}
		}
	}
	return reports, nil
}

// writeSpool keeps what waits in the spool file (written whole: a
// temporary file, fsync, rename); with nothing waiting it removes the file.
func (r *Reporter) writeSpool() {
	if r.spool == "" {
		return
	}
	r.mu.Lock()
	reports := make([]Report, 0, len(r.order))
	for _, a := range r.order {
		reports = append(reports, Report{Account: a, Findings: r.pending[a].findings})
	}
	r.mu.Unlock()
	if len(reports) == 0 {
		if err := os.Remove(r.spool); err != nil && !errors.Is(err, fs.ErrNotExist) {
			r.s.Log.Warn("removing the incident findings spool failed", "file", r.spool, "err", err)
		}
		return
	}
	b, err := json.Marshal(reports)
	if err == nil {
		err = writeFileSync(r.spool, b)
	}
	if err != nil {
		r.s.Log.Warn("keeping incident findings on disk failed (kept in memory only)", "file", r.spool, "err", err)
	}
}

// WriteFileSync writes a file whole: a temporary file beside it, fsync,
// rename (a spool file is either the old one or the new one).
func WriteFileSync(path string, b []byte) error { return writeFileSync(path, b) }

func writeFileSync(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// reportTimeout bounds one batch's writing: the incident lock is held
// across it, and a store that stops answering without closing the
// connection (a network cut) would otherwise hold every admin's incident
// action behind it. A batch that runs out is kept and tried again. A
// variable for tests.
var reportTimeout = 15 * time.Second

func (r *Reporter) reportWithin(batch []Report) error {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	return r.report(ctx, batch)
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
		ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
		defer cancel()
		r.report(ctx, []Report{{Account: account, Findings: fs}})
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

// run writes what waits; spooled says the spool file holds findings (read
// at start).
func (r *Reporter) run(spooled bool) {
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
		if len(batch) > 0 && r.reportWithin(batch) != nil {
			// Kept (bounded per account, as what waits), on disk too, and
			// tried again: a hold written just before the store went away
			// still reaches its incident, even across a kill or a stop.
			r.mu.Lock()
			for _, b := range batch {
				r.queue(b.Account, b.Findings)
			}
			r.mu.Unlock()
			r.writeSpool()
			spooled = true
			if !open {
				return
			}
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
			if spooled {
				r.writeSpool() // what came meanwhile, or nothing: removed
				spooled = false
			}
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
