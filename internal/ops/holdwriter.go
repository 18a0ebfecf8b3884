package ops

import (
	"context"
	"fmt"
	"strings"
	"sync"
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
}

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
	batch := make([]pendingHold, 0, w.maxBatch)
	for first := range w.ch {
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
		w.write(batch)
	}
}

// write records one batch; when the batch fails as a whole, each hold is
// tried on its own so one bad record does not lose the others.
func (w *HoldWriter) write(batch []pendingHold) {
	ctx := context.Background()
	hs := make([]*store.Hold, len(batch))
	for i, p := range batch {
		hs[i] = p.h
	}
	res, err := w.s.Quarantine.RecordMany(ctx, hs)
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
	if err := w.s.Audit.AppendAudits(ctx, audits); err != nil {
		w.s.Log.Error("writing hold audit entries failed", "holds", len(audits), "err", err)
	}
	for i, p := range batch {
		if p.done != nil {
			p.done(res[i].Hold, res[i].Created, nil)
		}
	}
}
