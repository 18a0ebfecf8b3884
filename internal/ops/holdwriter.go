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

	"github.com/mailbrake/mailbrake/internal/holdspool"
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
//
// When the store does not answer (HoldWriterOptions.Probe), holds are
// parked: kept in memory and, with a spool directory, in one file each on
// the local disk (holdspool), and written when the store answers again.
// A node killed meanwhile writes the spooled holds, with their whole
// records, when it starts again and the store answers.
type HoldWriter struct {
	s     *Service
	o     HoldWriterOptions
	ch    chan pendingHold
	done  chan struct{}
	once  sync.Once
	spool *holdspool.Spool // nil: parked holds are kept in memory only
	// maxHolds and maxBytes bound the parked holds and their spool files
	// (maxParked and maxSpoolBytes; smaller in tests).
	maxHolds int
	maxBytes int64

	// Owned by run's goroutine.
	parked       []pendingHold
	downUntil    time.Time
	backoff      time.Duration
	dropped      bool
	spoolFailing bool

	parkedN, givenUp, spoolErrors atomic.Int64
	unwritten                     queueIDs
}

// HoldWriterOptions configures a HoldWriter.
type HoldWriterOptions struct {
	// MaxDelay bounds how long a hold waits to be written; a batch is
	// also written as soon as it holds MaxBatch.
	MaxDelay time.Duration
	MaxBatch int
	// Probe, when set, tells a store that does not answer (PostgreSQL
	// down) from a record it refuses: after a failed write it is asked,
	// and when it fails too the holds are parked and written again when
	// the store answers, instead of failing.
	Probe func(ctx context.Context) error
	// SpoolDir, when set, is the directory (created 0700) where parked
	// holds are also written, and where the holds of a previous process
	// are found at start. Empty, or when it cannot be opened: parked holds
	// are kept in memory only.
	SpoolDir string
	// Loaded, when set, is called once a hold read from the spool at
	// start (a previous process's, killed before the store took it) is
	// written: with the findings it was to report, so that its incident
	// gets them and it is counted as the live hold would have been.
	Loaded func(stored *store.Hold, created bool, report []holdspool.Finding)
}

// Write bounds: a write or probe that takes longer fails; parked holds
// beyond maxParked, or spooled beyond maxSpoolBytes, are left to the
// queue sync (the oldest first).
const (
	holdWriteTimeout = 10 * time.Second
	maxParked        = 100_000
	maxParkBackoff   = 30 * time.Second
	// maxSpoolBytes keeps a long outage from filling the data disk: a
	// hold of a few KiB (the usual) leaves room for maxParked of them;
	// holds carrying the milter's 256 KiB of headers, for 4,000.
	maxSpoolBytes = 1 << 30
)

// Parked returns how many holds wait for the store to answer again.
func (w *HoldWriter) Parked() int { return int(w.parkedN.Load()) }

// Spooled returns how many parked holds are on the disk, and their size.
func (w *HoldWriter) Spooled() (holds int, bytes int64) {
	if w.spool == nil {
		return 0, 0
	}
	return w.spool.Len(), w.spool.Bytes()
}

// GivenUp counts the parked holds left to the queue sync because there
// were too many (maxParked, maxSpoolBytes).
func (w *HoldWriter) GivenUp() int64 { return w.givenUp.Load() }

// SpoolErrors counts the parked holds that could not be spooled (kept in
// memory only).
func (w *HoldWriter) SpoolErrors() int64 { return w.spoolErrors.Load() }

// Unwritten reports whether a hold of this queue ID is parked: its record
// is written when the store answers, so the queue sync leaves the message
// alone (quarantine.Service.Unwritten).
func (w *HoldWriter) Unwritten(queueID string) bool { return w.unwritten.has(queueID) }

type pendingHold struct {
	h    *store.Hold
	done func(stored *store.Hold, created bool, err error)
	// report: the findings done reports once the hold is written, kept
	// in the spool for a process that writes the hold after a restart
	// (HoldWriterOptions.Loaded).
	report []holdspool.Finding
	// spooled is the hold's spool file; its Name is empty when it has
	// none.
	spooled holdspool.Entry
	// parked: counted in unwritten. loaded: read from the spool at
	// start, so maybe written by the previous process just before it
	// was killed.
	parked, loaded bool
}

// queueIDs counts parked holds by queue ID, for Unwritten.
type queueIDs struct {
	mu sync.Mutex
	n  map[string]int
}

func (q *queueIDs) add(id string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == nil {
		q.n = map[string]int{}
	}
	q.n[id]++
}

func (q *queueIDs) remove(id string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n[id]--; q.n[id] <= 0 {
		delete(q.n, id)
	}
}

func (q *queueIDs) has(id string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n[id] > 0
}

// NewHoldWriter starts a writer for s. With o.SpoolDir, the holds a
// previous process spooled are written first, as soon as the store
// answers.
func NewHoldWriter(s *Service, o HoldWriterOptions) *HoldWriter {
	return newHoldWriter(s, o, maxParked, maxSpoolBytes)
}

func newHoldWriter(s *Service, o HoldWriterOptions, maxHolds int, maxBytes int64) *HoldWriter {
	w := &HoldWriter{s: s, o: o, ch: make(chan pendingHold, 4*o.MaxBatch), done: make(chan struct{}), maxHolds: maxHolds, maxBytes: maxBytes}
	if o.SpoolDir != "" {
		sp, loaded, err := holdspool.Open(o.SpoolDir, s.Log)
		if err != nil {
			s.Log.Error("the hold spool cannot be used: holds the store does not take are kept in memory only (killed meanwhile, their records are left to the queue sync)", "dir", o.SpoolDir, "err", err)
		} else {
			w.spool = sp
			for _, e := range loaded {
				w.parked = append(w.parked, pendingHold{h: e.Hold, report: e.Report, spooled: e, parked: true, loaded: true})
				w.unwritten.add(e.Hold.QueueID)
			}
			if len(loaded) > 0 {
				s.Log.Info("holds spooled before the last stop: written as soon as the store answers", "holds", len(loaded), "dir", o.SpoolDir)
				w.trim()
			}
			w.parkedN.Store(int64(len(w.parked)))
		}
	}
	go w.run()
	return w
}

// Record queues h to be written; done (may be nil) is called from the
// writer once it is. Record blocks only when the writer is that far behind
// (backpressure, never a dropped hold).
func (w *HoldWriter) Record(h *store.Hold, done func(stored *store.Hold, created bool, err error)) {
	w.RecordReport(h, nil, done)
}

// RecordReport is Record of a hold that reports findings once written
// (done reports them): they are spooled with it, so that when this process
// is killed before the store takes the hold, the next one reports them
// (HoldWriterOptions.Loaded).
func (w *HoldWriter) RecordReport(h *store.Hold, report []holdspool.Finding, done func(stored *store.Hold, created bool, err error)) {
	if h.HeldAt.IsZero() {
		h.HeldAt = w.s.now()
	}
	h.HeldAt = h.HeldAt.Truncate(time.Microsecond)
	w.ch <- pendingHold{h: h, done: done, report: report}
}

// Close writes what is pending and stops the writer; Record must not be
// called after. Holds the store does not take by then stay in the spool.
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
	w.retryParked(false) // what the spool held at start
	batch := make([]pendingHold, 0, w.o.MaxBatch)
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
		timer := time.NewTimer(w.o.MaxDelay)
	collect:
		for len(batch) < w.o.MaxBatch {
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
		n := min(len(todo), w.o.MaxBatch)
		w.write(todo[:n])
		todo = todo[n:]
	}
	if final && len(w.parked) > 0 {
		spooled := 0
		for _, p := range w.parked {
			if p.spooled.Name != "" {
				spooled++
			}
		}
		if spooled > 0 {
			w.s.Log.Warn("holds left in the spool: the store does not answer; they are written at the next start", "holds", spooled, "dir", w.spool.Dir())
		}
		if n := len(w.parked) - spooled; n > 0 {
			w.s.Log.Error("holds not recorded: the store does not answer; the queue sync records them from Postfix's hold queue at the next start", "holds", n)
		}
		for _, p := range w.parked {
			w.finish(p, nil, false, errStoreDown)
		}
		w.parked = nil
		w.parkedN.Store(0)
	}
}

var errStoreDown = errors.New("the store does not answer")

// finish ends a hold's time in the writer: done learns the outcome.
func (w *HoldWriter) finish(p pendingHold, stored *store.Hold, created bool, err error) {
	if p.parked {
		w.unwritten.remove(p.h.QueueID)
	}
	if p.done != nil {
		p.done(stored, created, err)
	} else if p.loaded && err == nil && stored != nil && w.o.Loaded != nil {
		w.o.Loaded(stored, created, p.report)
	}
}

// storeDown asks Probe whether the store answers; when it does not, new
// batches are parked without trying for a back-off that doubles up to
// maxParkBackoff.
func (w *HoldWriter) storeDown() bool {
	if w.o.Probe == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), holdWriteTimeout)
	defer cancel()
	if w.o.Probe(ctx) == nil {
		return false
	}
	w.backoff = min(max(2*w.backoff, time.Second), maxParkBackoff)
	w.downUntil = time.Now().Add(w.backoff)
	return true
}

// park keeps holds until the store answers again, spooling those not
// spooled yet.
func (w *HoldWriter) park(batch []pendingHold) {
	if len(w.parked) == 0 {
		where := "memory"
		if w.spool != nil {
			where = w.spool.Dir()
		}
		w.s.Log.Warn("holds kept in memory: the store does not answer; they are written when it does (Postfix holds the messages meanwhile)", "holds", len(batch), "spool", where)
	}
	w.spoolHolds(batch)
	for i := range batch {
		if !batch[i].parked {
			batch[i].parked = true
			w.unwritten.add(batch[i].h.QueueID)
		}
	}
	w.parked = append(w.parked, batch...)
	w.trim()
	w.parkedN.Store(int64(len(w.parked)))
}

// spoolHolds writes the holds of batch that have no spool file yet to the
// spool. One that cannot be written is kept in memory only.
func (w *HoldWriter) spoolHolds(batch []pendingHold) {
	if w.spool == nil {
		return
	}
	var idx []int
	var in []holdspool.Entry
	for i, p := range batch {
		if p.spooled.Name == "" {
			idx = append(idx, i)
			in = append(in, holdspool.Entry{Hold: p.h, Report: p.report})
		}
	}
	if len(in) == 0 {
		return
	}
	es, err := w.spool.PutEntries(in)
	failed := 0
	for j, i := range idx {
		batch[i].spooled = es[j]
		if es[j].Name == "" {
			failed++
		}
	}
	w.spoolErrors.Add(int64(failed))
	switch {
	case err != nil && !w.spoolFailing:
		w.spoolFailing = true
		w.s.Log.Error("holds not spooled, kept in memory only (killed now, their records are left to the queue sync)", "holds", failed, "dir", w.spool.Dir(), "err", err)
	case err == nil && w.spoolFailing:
		w.spoolFailing = false
		w.s.Log.Info("the hold spool is written again", "dir", w.spool.Dir())
	}
}

// trim leaves the oldest parked holds to the queue sync while there are
// more than maxParked, or their spool files take more than maxSpoolBytes.
func (w *HoldWriter) trim() {
	var spoolBytes int64
	if w.spool != nil {
		spoolBytes = w.spool.Bytes()
	}
	n := 0
	for n < len(w.parked) && (len(w.parked)-n > w.maxHolds || spoolBytes > w.maxBytes) {
		spoolBytes -= w.parked[n].spooled.Size
		n++
	}
	if n == 0 {
		return
	}
	if !w.dropped {
		w.dropped = true
		w.s.Log.Error("too many holds waiting for the store; the oldest are left to the queue sync", "kept", len(w.parked)-n,
			"max_holds", w.maxHolds, "max_spool_bytes", w.maxBytes)
	}
	gone := w.parked[:n]
	if w.spool != nil {
		es := make([]holdspool.Entry, n)
		for i, p := range gone {
			es[i] = p.spooled
		}
		if err := w.spool.Remove(es); err != nil {
			w.s.Log.Error("removing holds left to the queue sync from the spool failed", "err", err)
		}
	}
	for _, p := range gone {
		w.finish(p, nil, false, errStoreDown)
	}
	w.givenUp.Add(int64(n))
	w.parked = slices.Delete(w.parked, 0, n)
}

// skipWritten drops from batch the holds loaded from the spool that the
// previous process wrote before it was killed (between the store's commit
// and the file's removal) and whose message has left the hold queue since:
// written again, they would be a second record, the first no longer
// held. One whose record is still held is left in: it merges into it.
func (w *HoldWriter) skipWritten(ctx context.Context, batch []pendingHold) ([]pendingHold, error) {
	out := batch[:0:0]
	for _, p := range batch {
		if p.loaded && p.h.QueueID != "" {
			old, err := w.s.Quarantine.Store.HoldByQueueID(ctx, p.h.QueueID)
			switch {
			case errors.Is(err, store.ErrNotFound):
			case err != nil:
				return batch, err
			case old.Node == w.s.Quarantine.Node && old.HeldAt.Equal(p.h.HeldAt) && old.State != store.HoldHeld:
				w.s.Log.Info("a spooled hold was recorded before the last stop", "hold", old.ID, "queue_id", old.QueueID, "state", old.State)
				if err := w.spool.Remove([]holdspool.Entry{p.spooled}); err != nil {
					w.s.Log.Error("removing a written hold from the spool failed", "err", err)
				}
				w.finish(p, old, false, nil)
				continue
			}
		}
		out = append(out, p)
	}
	return out, nil
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
	batch, err := w.skipWritten(ctx, batch)
	if err != nil && w.storeDown() {
		w.park(batch)
		return
	}
	if len(batch) == 0 {
		return
	}
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
		// The store answers and refuses this record: a spooled copy is
		// kept aside for the admin, never tried again.
		if w.spool != nil {
			w.spool.Aside(batch[0].spooled, err)
		}
		w.finish(batch[0], nil, false, err)
		return
	}
	if w.spool != nil {
		es := make([]holdspool.Entry, len(batch))
		for i, p := range batch {
			es[i] = p.spooled
		}
		if err := w.spool.Remove(es); err != nil {
			// Written again at the next start, they merge into their
			// records.
			w.s.Log.Error("removing written holds from the spool failed", "err", err)
		}
	}
	if len(w.parked) == 0 && w.backoff > 0 {
		w.backoff = 0
		w.dropped = false
		w.s.Log.Info("the store answers again; held messages are recorded")
	}
	var audits []store.AuditEntry
	for i, r := range res {
		if batch[i].loaded {
			w.s.Log.Info("a hold spooled before the last stop is recorded", "hold", r.Hold.ID, "queue_id", r.Hold.QueueID, "merged", !r.Created)
		}
		if !r.Created {
			continue
		}
		h := r.Hold
		audits = append(audits, store.AuditEntry{Time: w.s.now(), Actor: "system", Action: store.AuditHold, Target: fmt.Sprintf("hold:%d", h.ID),
			Detail: fmt.Sprintf("queue_id=%s account=%s reasons=%s path=%s", h.QueueID, h.Account, strings.Join(h.Reasons, ","), batch[i].h.Path)})
		if w.s.Volume != nil {
			w.s.Volume.AddHeld(h.HeldAt)
		}
	}
	if err := w.s.Audit.AppendAudits(context.WithoutCancel(ctx), audits); err != nil {
		w.s.Log.Error("writing hold audit entries failed", "holds", len(audits), "err", err)
	}
	for i, p := range batch {
		w.finish(p, res[i].Hold, res[i].Created, nil)
	}
}
