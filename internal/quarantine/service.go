package quarantine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/mailbrake/mailbrake/internal/store"
)

// Queue is what the service needs from Postfix; *Postfix implements it.
type Queue interface {
	Release(ctx context.Context, qid string) error
	Delete(ctx context.Context, qid string) error
	Hold(ctx context.Context, qid string) error
	Queue(ctx context.Context) ([]QueueEntry, error)
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
}

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
	return s.Store.PutHold(ctx, h)
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
		return h, err
	}
	at := s.now()
	if err := s.Store.SetHoldState(ctx, id, store.HoldHeld, to, actor, at); err != nil {
		return h, fmt.Errorf("postfix acted but recording the new state failed: %w", err)
	}
	h.State, h.StateAt, h.StateBy = to, at, actor
	return h, nil
}

// Change is one state change found by Sync.
type Change struct {
	ID      int64
	QueueID string
	To      store.HoldState
}

// Sync reconciles held records with the Postfix queue: a held message no
// longer in the hold queue was released (it is in another queue now),
// expired (gone after maximal_queue_lifetime), or deleted (gone). A message
// released with postsuper -H and already delivered before the next sync
// cannot be told from a deletion by the queue alone; it is recorded as
// deleted by "postfix".
func (s *Service) Sync(ctx context.Context) ([]Change, error) {
	entries, err := s.Queue.Queue(ctx)
	if err != nil {
		return nil, err
	}
	where := make(map[string]string, len(entries))
	for _, e := range entries {
		where[e.QueueID] = e.QueueName
	}
	var changes []Change
	offset := 0
	for {
		page, err := s.Store.ListHolds(ctx, store.HoldFilter{State: store.HoldHeld, Limit: 500, Offset: offset})
		if err != nil {
			return changes, err
		}
		for _, h := range page {
			q, ok := where[h.QueueID]
			if ok && q == "hold" {
				continue
			}
			to := store.HoldDeleted
			switch {
			case ok:
				to = store.HoldReleased
			case s.MaxQueueLifetime > 0 && s.now().Sub(h.HeldAt) >= s.MaxQueueLifetime:
				to = store.HoldExpired
			}
			err := s.Store.SetHoldState(ctx, h.ID, store.HoldHeld, to, "postfix", s.now())
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
	return changes, nil
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

// HoldQueuedFrom puts on hold every message of sender waiting in the
// incoming, active or deferred queue (postsuper -h), so a restricted
// account's mail already accepted does not go out. It returns the queue
// IDs held. The queue only records the envelope sender, so that is what is
// matched (case-insensitively).
func (s *Service) HoldQueuedFrom(ctx context.Context, sender string) ([]string, error) {
	entries, err := s.Queue.Queue(ctx)
	if err != nil {
		return nil, err
	}
	var held []string
	var errs []error
	for _, e := range entries {
		if e.QueueName == "hold" || !strings.EqualFold(e.Sender, sender) {
			continue
		}
		if err := s.Queue.Hold(ctx, e.QueueID); err != nil {
			// Delivered meanwhile, most likely; keep going.
			errs = append(errs, err)
			continue
		}
		held = append(held, e.QueueID)
	}
	return held, errors.Join(errs...)
}
