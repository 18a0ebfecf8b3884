package ops

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailbrake/mailbrake/internal/store"
)

// HoldWriter records holds off the request path. The protocol adapters
// hand it a hold and answer the MTA at once; it writes what is pending in
// one transaction (with the holds' audit lines in a second) no later than
// MaxDelay after the first of them arrived, then calls each hold's done
// with its record. Postfix holds the message meanwhile, so nothing is
// lost when mailbrake is killed before a batch is written: the queue sync
// at the next start finds the message in the hold queue and records it
// (quarantine.Service.Sync).
type HoldWriter struct {
	s        *Service
	maxDelay time.Duration
	maxBatch int
	ch       chan pendingHold
	done     chan struct{}
	once     sync.Once

	// Probe, when set, tells a store that does not answer (PostgreSQL
	// down) from a record it refuses: after a failed write it is asked,
	// and when it fails too the holds are kept (parked) and written again
	// when the store answers, instead of failing. Set before the first
	// Record.
	Probe func(ctx context.Context) error

	// Owned by run's goroutine, except parkedN.
	parked    []pendingHold
	downUntil time.Time
	backoff   time.Duration
	parkedN   atomic.Int64
	dropped   bool
}

// Write bounds: a write or probe that takes longer fails; parked holds
// beyond maxParked are left to the queue sync.
const (
	holdWriteTimeout = 10 * time.Second
	maxParked        = 100_000
	maxParkBackoff   = 30 * time.Second
)

// Parked returns how many holds wait for the store to answer again.
func (w *HoldWriter) Parked() int { return int(w.parkedN.Load()) }

type pendingHold struct {
	h    *store.Hold
	done func(stored *store.Hold, created bool, err error)
}

// NewHoldWriter starts a writer for s. maxDelay bounds how long a hold
// waits to be written (a batch is also written as soon as it holds
// maxBatch).
func NewHoldWriter(s *Service, maxDelay time.Duration, maxBatch int) *HoldWriter {
	w := &HoldWriter{s: s, maxDelay: maxDelay, maxBatch: maxBatch, ch: make(chan pendingHold, 4*maxBatch), done: make(chan struct{})}
	go w.run()
	return w
}

// Record queues h to be written; done (may be nil) is called from the
// writer once it is. Record blocks only when the writer is that far behind
// (backpressure, never a dropped hold).
func (w *HoldWriter) Record(h *store.Hold, done func(stored *store.Hold, created bool, err error)) {
	h.HeldAt = h.HeldAt.Truncate(time.Microsecond)
	w.ch <- pendingHold{h: h, done: done}
}

// Close writes what is pending and stops the writer; Record must not be
// called after.
func (w *HoldWriter) Close(ctx context.Context) error {
	w.once.Do(func() { close(w.ch) })
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("holds not yet written: %w", ctx.Err())
	}
}

func (w *HoldWriter) run() {
	defer close(w.done)
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	batch := make([]pendingHold, 0, w.maxBatch)
	for {
		var first pendingHold
		select {
		case p, ok := <-w.ch:
			if !ok {
				w.retryParked(true)
				return
			}
			first = p
		case <-retry.C:
			w.retryParked(false)
			continue
		}
		batch = append(batch[:0], first)
		timer := time.NewTimer(w.maxDelay)
	collect:
		for len(batch) < w.maxBatch {
			select {
			case p, ok := <-w.ch:
				if !ok {
					break collect
				}
				batch = append(batch, p)
			case <-timer.C:
				break collect
			}
		}
		timer.Stop()
		w.write(slices.Clone(batch))
	}
}

// retryParked writes the parked holds again once the back-off has passed
// (at the end, whatever it is); what still fails is parked again.
func (w *HoldWriter) retryParked(final bool) {
	if len(w.parked) == 0 || (!final && time.Now().Before(w.downUntil)) {
		return
	}
	todo := w.parked
	w.parked = nil
	w.parkedN.Store(0)
	w.downUntil = time.Time{}
	for len(todo) > 0 {
		n := min(len(todo), w.maxBatch)
		w.write(todo[:n])
		todo = todo[n:]
	}
	if final && len(w.parked) > 0 {
		w.s.Log.Error("holds not recorded: the store does not answer; the queue sync records them from Postfix's hold queue at the next start", "holds", len(w.parked))
		for _, p := range w.parked {
			if p.done != nil {
				p.done(nil, false, errStoreDown)
			}
		}
		w.parked = nil
		w.parkedN.Store(0)
	}
}

var errStoreDown = errors.New("the store does not answer")

// storeDown asks Probe whether the store answers; when it does not, new
// batches are parked without trying for a back-off that doubles up to
// maxParkBackoff.
func (w *HoldWriter) storeDown() bool {
	if w.Probe == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), holdWriteTimeout)
	defer cancel()
	if w.Probe(ctx) == nil {
		return false
	}
	w.backoff = min(max(2*w.backoff, time.Second), maxParkBackoff)
	w.downUntil = time.Now().Add(w.backoff)
	return true
}

// park keeps holds until the store answers again.
func (w *HoldWriter) park(batch []pendingHold) {
	if len(w.parked) == 0 {
		w.s.Log.Warn("holds kept in memory: the store does not answer; they are written when it does (Postfix holds the messages meanwhile)", "holds", len(batch))
	}
	w.parked = append(w.parked, batch...)
	if over := len(w.parked) - maxParked; over > 0 {
		if !w.dropped {
			w.dropped = true
			w.s.Log.Error("too many holds waiting for the store; the oldest are left to the queue sync", "kept", maxParked)
		}
		for _, p := range w.parked[:over] {
			if p.done != nil {
				p.done(nil, false, errStoreDown)
			}
		}
		w.parked = slices.Delete(w.parked, 0, over)
	}
	w.parkedN.Store(int64(len(w.parked)))
}

// write records one batch; when the batch fails as a whole and the store
// answers, each hold is tried on its own so one bad record does not lose
// the others; when the store does not answer, the batch is parked.
func (w *HoldWriter) write(batch []pendingHold) {
	if time.Now().Before(w.downUntil) {
		w.park(batch)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), holdWriteTimeout)
	defer cancel()
	hs := make([]*store.Hold, len(batch))
	for i, p := range batch {
		hs[i] = p.h
	}
	res, err := w.s.Quarantine.RecordMany(ctx, hs)
	if err != nil && w.storeDown() {
		w.park(batch)
		return
	}
	if err != nil && len(batch) > 1 {
		for _, p := range batch {
			w.write([]pendingHold{p})
		}
		return
	}
	if err != nil {
		if batch[0].done != nil {
			batch[0].done(nil, false, err)
		}
		return
	}
	if len(w.parked) == 0 && w.backoff > 0 {
		w.backoff = 0
		w.dropped = false
		w.s.Log.Info("the store answers again; held messages are recorded")
	}
	var audits []store.AuditEntry
	for i, r := range res {
		if !r.Created {
			continue
		}
		h := r.Hold
		audits = append(audits, store.AuditEntry{Time: w.s.now(), Actor: "system", Action: AuditHold, Target: fmt.Sprintf("hold:%d", h.ID),
			Detail: fmt.Sprintf("queue_id=%s account=%s reasons=%s path=%s", h.QueueID, h.Account, strings.Join(h.Reasons, ","), batch[i].h.Path)})
		if w.s.Volume != nil {
			w.s.Volume.AddHeld(h.HeldAt)
		}
	}
	if err := w.s.Audit.AppendAudits(context.WithoutCancel(ctx), audits); err != nil {
		w.s.Log.Error("writing hold audit entries failed", "holds", len(audits), "err", err)
	}
	for i, p := range batch {
		if p.done != nil {
			p.done(res[i].Hold, res[i].Created, nil)
		}
	}
}
