package quarantine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailbrake/mailbrake/internal/store"
)

// Queue is what the service needs from Postfix; *Postfix implements it.
type Queue interface {
	Release(ctx context.Context, qid string) error
	Delete(ctx context.Context, qid string) error
	Hold(ctx context.Context, qid string) error
	Queue(ctx context.Context) ([]QueueEntry, error)
	// Headers returns a queued message's header block.
	Headers(ctx context.Context, qid string) (string, error)
}

var _ Queue = (*Postfix)(nil)

// Service manages held messages.
type Service struct {
	Store store.Quarantine
	Queue Queue
	Log   *slog.Logger
	Now   func() time.Time
	// MaxQueueLifetime is Postfix's maximal_queue_lifetime: a held message
	// that vanished from the queue after this long is taken as expired.
	MaxQueueLifetime time.Duration
	// Grace is how young a hold or a queue entry may be for Sync to leave
	// it alone: Postfix finishes writing the queue file only after the
	// milter or policy answer, and the hold record is written off the
	// request path. Zero leaves nothing alone (tests); the daemon passes
	// postfix.sync_grace (DefaultGrace unless configured).
	Grace time.Duration
	// AccountHeader is identity.account_header: the header field whose
	// last copy a trusted relay adds to name the account (Zimbra's
	// X-Authenticated-User); "": none is read.
	AccountHeader string
	// Node is this node's name in cluster mode: every hold recorded here
	// carries it. SharedStore says the store also holds other nodes'
	// holds (cluster.postgres): Sync then looks at this node's only, and
	// a release or delete of another node's hold goes to that node
	// through Commands (see cluster.go).
	Node        string
	SharedStore bool
	Commands    store.Commands
	// CommandWait is how long a release or delete waits for the node
	// that holds the message (DefaultCommandWait when zero).
	CommandWait time.Duration
	// NodeDownAfter is the age of a node's last heartbeat past which a
	// release or delete of its hold does not wait for it (the command
	// is left pending for when it is back); zero: always wait.
	NodeDownAfter time.Duration

	instanceOnce sync.Once
	instance     string // this process, in its heartbeats (Beat)
	beats        atomic.Int64
	nameInUse    atomic.Bool
	// Unwritten, when set, reports that the record of a hold of this
	// queue ID waits to be written (ops.HoldWriter: the store did not
	// answer): Sync does not record the message from the queue, whose
	// mark has less than that record (a policy hold has none).
	Unwritten func(queueID string) bool
}

// DefaultGrace: Postfix commits a queue file within seconds of the answer;
// a minute leaves room for a loaded machine.
const DefaultGrace = time.Minute

// ReasonHeldOutside is the reason of a hold-queue message mailbrake did
// not hold (postsuper -h by hand, another filter's HOLD, or a policy-path
// hold whose record was lost: the policy protocol cannot mark the message).
const ReasonHeldOutside = "held-outside-mailbrake"

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Record stores a new hold (merging with a hold of the same queue ID).
func (s *Service) Record(ctx context.Context, h *store.Hold) (*store.Hold, error) {
	if h.HeldAt.IsZero() {
		h.HeldAt = s.now()
	}
	h.State = store.HoldHeld
	h.StateAt = h.HeldAt
	h.Node = s.Node
	return s.Store.PutHold(ctx, h)
}

// RecordMany stores new holds in one go, each as Record does.
func (s *Service) RecordMany(ctx context.Context, hs []*store.Hold) ([]store.PutResult, error) {
	for _, h := range hs {
		if h.HeldAt.IsZero() {
			h.HeldAt = s.now()
		}
		h.State = store.HoldHeld
		h.StateAt = h.HeldAt
		h.Node = s.Node
	}
	return s.Store.PutHolds(ctx, hs)
}

// Release releases a held message: it is delivered once and not held again
// (the milter and policy checks run only at SMTP time).
func (s *Service) Release(ctx context.Context, id int64, actor string) (*store.Hold, error) {
	return s.transition(ctx, id, actor, store.HoldReleased, s.Queue.Release)
}

// Delete deletes a held message from the Postfix queue.
func (s *Service) Delete(ctx context.Context, id int64, actor string) (*store.Hold, error) {
	return s.transition(ctx, id, actor, store.HoldDeleted, s.Queue.Delete)
}

func (s *Service) transition(ctx context.Context, id int64, actor string, to store.HoldState, do func(context.Context, string) error) (*store.Hold, error) {
	h, err := s.Store.GetHold(ctx, id)
	if err != nil {
		return nil, err
	}
	if h.State != store.HoldHeld {
		return h, fmt.Errorf("hold %d is %s: %w", id, h.State, store.ErrConflict)
	}
	if s.elsewhere(h) {
		return s.forward(ctx, h, to, actor)
	}
	if h.QueueID == "" {
		return h, fmt.Errorf("hold %d has no Postfix queue id", id)
	}
	if err := do(ctx, h.QueueID); err != nil {
		if errors.Is(err, ErrNotInHold) {
			// Someone else acted on the queue: find out what happened.
			if _, serr := s.Sync(ctx); serr != nil {
				s.Log.Warn("quarantine sync after conflict failed", "err", serr)
			}
			h2, gerr := s.Store.GetHold(ctx, id)
			if gerr == nil {
				h = h2
			}
			return h, fmt.Errorf("hold %d (queue id %s): %w", id, h.QueueID, err)
		}
		// The command failed, but it may have acted (postsuper moves
		// the file, then fails on something else): the queue says.
		if !s.acted(ctx, h.QueueID, to) {
			return h, err
		}
		s.Log.Warn("postsuper reported failure but the message was moved; recording it", "hold", id, "queue_id", h.QueueID, "state", to, "err", err)
	}
	at := s.now()
	if err := s.Store.SetHoldState(ctx, id, store.HoldHeld, to, actor, at); err != nil {
		return h, fmt.Errorf("postfix acted but recording the new state failed: %w", err)
	}
	h.State, h.StateAt, h.StateBy = to, at, actor
	return h, nil
}

// acted reports whether the queue shows qid released (out of the hold
// queue, still queued) or deleted (gone), as to asks.
func (s *Service) acted(ctx context.Context, qid string, to store.HoldState) bool {
	entries, err := s.Queue.Queue(ctx)
	if err != nil {
		return false
	}
	where := ""
	for _, e := range entries {
		if e.QueueID == qid {
			where = e.QueueName
		}
	}
	switch to {
	case store.HoldReleased:
		return where != "" && where != "hold"
	case store.HoldDeleted:
		return where == ""
	}
	return false
}

// Change is one state change found by Sync.
type Change struct {
	ID      int64
	QueueID string
	To      store.HoldState
	// Recovered: a message in the hold queue without a record, recorded by
	// Sync (with the reasons of its mark, or ReasonHeldOutside); Hold is
	// the record made.
	Recovered bool
	Hold      *store.Hold
	// Revived: a record Sync had marked gone whose message is in the hold
	// queue again.
	Revived bool
}

// Sync reconciles the records with the Postfix queue. A held message no
// longer in the hold queue was released (it is in another queue now),
// expired (gone after maximal_queue_lifetime), or deleted (gone). A message
// released with postsuper -H and already delivered before the next sync
// cannot be told from a deletion by the queue alone; it is recorded as
// deleted by "postfix". The other way round, every message in the hold
// queue has a record: one Sync had marked gone is held again (revived), and
// one never recorded (mailbrake killed before its record was written, the
// store unwritable, a hold made outside mailbrake) is recorded, with the
// reasons of the mark the milter put on it (MarkHeader) or as
// ReasonHeldOutside. Records and queue entries younger than Grace are left
// alone: their queue file or record may not be written yet; so are
// messages whose record waits to be written (Unwritten).
func (s *Service) Sync(ctx context.Context) ([]Change, error) {
	if s.NameInUse() {
		return nil, ErrNodeNameInUse
	}
	entries, err := s.Queue.Queue(ctx)
	if err != nil {
		return nil, err
	}
	grace := s.Grace
	now := s.now()
	where := make(map[string]string, len(entries))
	for _, e := range entries {
		where[e.QueueID] = e.QueueName
	}
	recorded := map[string]bool{}
	var changes []Change
	offset := 0
	for {
		page, err := s.Store.ListHolds(ctx, store.HoldFilter{State: store.HoldHeld, Limit: 500, Offset: offset, Node: s.syncNode()})
		if err != nil {
			return changes, err
		}
		for _, h := range page {
			recorded[h.QueueID] = true
			q, ok := where[h.QueueID]
			if ok && q == "hold" {
				continue
			}
			// A message in the active or deferred queue was released
			// whatever its age; one missing or still incoming may be a
			// transaction not yet finished (a policy HOLD at RCPT, the
			// queue file not yet moved to hold).
			if young := now.Sub(h.HeldAt) < grace; young && (!ok || q == "incoming" || q == "maildrop") {
				continue
			}
			to := store.HoldDeleted
			switch {
			case ok:
				to = store.HoldReleased
			case s.MaxQueueLifetime > 0 && now.Sub(h.HeldAt) >= s.MaxQueueLifetime:
				to = store.HoldExpired
			}
			err := s.Store.SetHoldState(ctx, h.ID, store.HoldHeld, to, "postfix", now)
			if errors.Is(err, store.ErrConflict) {
				continue // changed by an admin meanwhile
			}
			if err != nil {
				return changes, err
			}
			changes = append(changes, Change{ID: h.ID, QueueID: h.QueueID, To: to})
		}
		if len(page) < 500 {
			break
		}
		offset += len(page) - countMoved(changes, page)
	}
	for _, e := range entries {
		if e.QueueName != "hold" || recorded[e.QueueID] || now.Sub(time.Unix(e.ArrivalTime, 0)) < grace ||
			(s.Unwritten != nil && s.Unwritten(e.QueueID)) {
			continue
		}
		c, err := s.recover(ctx, e, now)
		if err != nil {
			return changes, err
		}
		changes = append(changes, c)
	}
	return changes, nil
}

// recover gives a hold-queue message without a held record one: the record
// Sync marked gone comes back, or a new one is made from the queue entry
// and the message's mark.
func (s *Service) recover(ctx context.Context, e QueueEntry, now time.Time) (Change, error) {
	if old, err := s.Store.HoldByQueueID(ctx, e.QueueID); err == nil && old.State != store.HoldHeld && old.StateBy == "postfix" && !s.elsewhere(old) {
		if err := s.Store.SetHoldState(ctx, old.ID, old.State, store.HoldHeld, "postfix", now); err == nil {
			return Change{ID: old.ID, QueueID: e.QueueID, To: store.HoldHeld, Revived: true}, nil
		}
	}
	h := &store.Hold{QueueID: e.QueueID, Node: s.Node, Path: "queue", Sender: e.Sender, Recipients: append([]string{}, e.Recipients...),
		RecipientCount: len(e.Recipients), Size: e.Size, Reasons: []string{ReasonHeldOutside}, HeldAt: time.Unix(e.ArrivalTime, 0).UTC()}
	if headers, err := s.Queue.Headers(ctx, e.QueueID); err == nil {
		if account, reasons, ok := markIn(headers, e.QueueID); ok {
			h.Path, h.Account, h.Reasons = "milter", account, reasons
		}
		h.Subject = HeaderField(headers, "Subject")
		h.Headers = headers
	} else {
		s.Log.Warn("reading a held message's headers failed", "queue_id", e.QueueID, "err", err)
	}
	if h.Account == "" {
		h.Account = e.Sender
	}
	stored, err := s.Record(ctx, h)
	if err != nil {
		return Change{}, err
	}
	return Change{ID: stored.ID, QueueID: e.QueueID, To: store.HoldHeld, Recovered: true, Hold: stored}, nil
}

// HeaderField returns the first value of a header in a header block
// ("Name: value" lines, folded lines continued with white space, as
// postcat -h and the hold record keep them), unfolded and bounded.
func HeaderField(headers, name string) string {
	lines := strings.Split(strings.ReplaceAll(headers, "\r\n", "\n"), "\n")
	for i, line := range lines {
		if line == "" || line[0] == ' ' || line[0] == '\t' {
			continue // a continuation line is not a header's name
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), name) {
			continue
		}
		for _, cont := range lines[i+1:] {
			if cont == "" || (cont[0] != ' ' && cont[0] != '\t') {
				break
			}
			v += " " + strings.TrimSpace(cont)
		}
		v = strings.TrimSpace(v)
		if len(v) > 512 {
			v = v[:512]
		}
		return strings.ToValidUTF8(v, "\uFFFD")
	}
	return ""
}

// countMoved counts how many holds of page left the held state (they drop
// out of the next page's window).
func countMoved(changes []Change, page []store.Hold) int {
	ids := map[int64]bool{}
	for _, c := range changes {
		ids[c.ID] = true
	}
	n := 0
	for _, h := range page {
		if ids[h.ID] {
			n++
		}
	}
	return n
}

// decided reports whether the queue entry is a message mailbrake recorded
// a hold of. Postfix reuses short queue IDs, so a record older than the
// message's arrival belongs to another message.
func (s *Service) decided(ctx context.Context, e QueueEntry) bool {
	h, err := s.Store.HoldByQueueID(ctx, e.QueueID)
	if err != nil {
		return false
	}
	return !h.HeldAt.Before(time.Unix(e.ArrivalTime, 0).Add(-time.Minute))
}

// HoldQueuedFrom puts on hold every message of account waiting in the
// incoming, active or deferred queue (postsuper -h), so a restricted
// account's mail already accepted does not go out. It returns the queue
// IDs held. A message is the account's when its envelope sender is the
// account, or — read from the queue file (postcat -e) — its SASL login
// is (a login that is not an address, or mail sent with another MAIL
// FROM), or the last copy of AccountHeader, which the trusted relay adds
// (Zimbra's X-Authenticated-User), names it. A forged header copy can
// only hold more of the forger's own mail, never release any.
func (s *Service) HoldQueuedFrom(ctx context.Context, account string) ([]string, error) {
	key := store.AccountKey(account)
	held, err := s.HoldQueuedOf(ctx, map[string]bool{key: true})
	return held[key], err
}

// originReader reads who queued messages came from (Postfix.Origins).
type originReader interface {
	Origins(ctx context.Context, ids []string, header string) ([]Origin, error)
}

// HoldQueuedOf is HoldQueuedFrom for several accounts (store.AccountKey
// form) with one reading of the queue; it returns the queue IDs held by
// account.
func (s *Service) HoldQueuedOf(ctx context.Context, accounts map[string]bool) (map[string][]string, error) {
	held := map[string][]string{}
	if len(accounts) == 0 {
		return held, nil
	}
	entries, err := s.Queue.Queue(ctx)
	if err != nil {
		return held, err
	}
	var errs []error
	hold := func(e QueueEntry, account string) {
		if s.decided(ctx, e) {
			// Mailbrake held this message before and it left the hold
			// queue: an admin released it (now, or with postsuper -H).
			// Holding it again would undo that.
			return
		}
		if err := s.Queue.Hold(ctx, e.QueueID); err != nil {
			// Delivered meanwhile, most likely; keep going.
			errs = append(errs, err)
			return
		}
		held[account] = append(held[account], e.QueueID)
	}
	// By envelope sender first; the others by what their queue files say.
	var rest []string
	byID := map[string]QueueEntry{}
	for _, e := range entries {
		if e.QueueName == "hold" {
			continue
		}
		if sender := store.AccountKey(e.Sender); accounts[sender] {
			hold(e, sender)
			continue
		}
		rest = append(rest, e.QueueID)
		byID[e.QueueID] = e
	}
	or, ok := s.Queue.(originReader)
	if !ok || len(rest) == 0 {
		return held, errors.Join(errs...)
	}
	origins, err := or.Origins(ctx, rest, s.AccountHeader)
	if err != nil {
		errs = append(errs, err)
	}
	for _, o := range origins {
		account := ""
		if a := store.AccountKey(o.SASLUsername); accounts[a] {
			account = a
		} else if len(o.Header) > 0 {
			if a := store.AccountKey(o.Header[len(o.Header)-1]); accounts[a] {
				account = a
			}
		}
		if e, ok := byID[o.QueueID]; ok && account != "" {
			hold(e, account)
		}
	}
	return held, errors.Join(errs...)
}
