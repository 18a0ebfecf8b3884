package ops

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/auth"
)

// RecordsCheckEvery bounds how often the records store is probed for the
// read-only flag of Status (the web UI's banner): page views in between
// read the last result. A probe commits one row; one every few seconds
// costs the store nothing, and an outage shows within this long.
const RecordsCheckEvery = 5 * time.Second

// recordsProbeTimeout bounds one probe: a database across a network that
// does not answer makes one page wait this long at most, once per
// RecordsCheckEvery (the others read the last result meanwhile).
const recordsProbeTimeout = 2 * time.Second

// Records tells whether the records store takes writes: the read-only
// flag of Status, and the words of an admin request that failed because
// it does not (Explain).
type Records struct {
	// Kind is the backend: api.RecordsSQLite or api.RecordsPostgres.
	Kind string
	// Probe commits a write (the stores' WriteProbe).
	Probe func(ctx context.Context) error
	Now   func() time.Time

	mu      sync.Mutex
	at      time.Time // of the last probe's result; zero: none yet
	err     error
	running chan struct{} // closed when the running probe ends; nil: none
}

func (r *Records) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Check returns the last probe's result when it is younger than
// RecordsCheckEvery, else probes.
func (r *Records) Check(ctx context.Context) error {
	return r.get(ctx, func(last error, age time.Duration) bool { return age < RecordsCheckEvery })
}

// Recheck is Check after an admin request failed: a store last seen
// answering is probed again at once, since it may have gone away since.
func (r *Records) Recheck(ctx context.Context) error {
	return r.get(ctx, func(last error, age time.Duration) bool { return last != nil && age < RecordsCheckEvery })
}

// get returns the last result when fresh says it will do; otherwise it
// starts a probe, or joins the one running, and waits for it (or for
// ctx, then answering with the last result). Probes never overlap.
func (r *Records) get(ctx context.Context, fresh func(last error, age time.Duration) bool) error {
	r.mu.Lock()
	if !r.at.IsZero() && fresh(r.err, r.now().Sub(r.at)) {
		err := r.err
		r.mu.Unlock()
		return err
	}
	done := r.running
	if done == nil {
		done = make(chan struct{})
		r.running = done
		go r.probe(done)
	}
	r.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// probe runs one probe with a context of its own: the request that
// started it may end first, and its cancellation says nothing of the
// store.
func (r *Records) probe(done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), recordsProbeTimeout)
	err := r.Probe(ctx)
	cancel()
	r.mu.Lock()
	r.at, r.err, r.running = r.now(), err, nil
	r.mu.Unlock()
	close(done)
}

// unavailable is the error of an admin request the store could not
// serve: what does not answer, and what that means, without the driver's
// words (the log has them).
func (r *Records) unavailable() error {
	if r.Kind == api.RecordsPostgres {
		return fmt.Errorf("PostgreSQL does not answer: mailbrake's records can be neither read nor changed until it is back; "+
			"held mail stays in Postfix's hold queue and is recorded then (%w)", api.ErrUnavailable)
	}
	return fmt.Errorf("the SQLite database takes no writes (a full disk, a read-only file system or a lock held by another process): "+
		"mailbrake's records cannot be changed until it does; held mail stays in Postfix's hold queue and is recorded then (%w)", api.ErrUnavailable)
}

// Explain implements api.Explainer: an error other than the API's own
// (not found, conflict, bad request, unavailable, forbidden, a cancelled
// request), met while the records store does not take writes, becomes
// ErrUnavailable saying so, in place of the driver's error; that goes to
// the log.
func (s *Service) Explain(ctx context.Context, err error) error {
	if err == nil || s.Records == nil {
		return err
	}
	for _, known := range []error{api.ErrNotFound, api.ErrConflict, api.ErrBadRequest, api.ErrUnavailable, auth.ErrForbidden, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, known) {
			return err
		}
	}
	if s.Records.Recheck(ctx) == nil {
		return err
	}
	s.Log.Warn("admin request failed: the records store does not take writes", "records", s.Records.Kind, "err", err)
	return s.Records.unavailable()
}
