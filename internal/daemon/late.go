package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mailbrake/mailbrake/internal/ops"
	"github.com/mailbrake/mailbrake/internal/store"
	"github.com/mailbrake/mailbrake/internal/store/postgres"
	"github.com/mailbrake/mailbrake/internal/store/sqlite"
)

// pgStartWait bounds how long a starting node waits for PostgreSQL (and,
// when PostgreSQL does not answer, for the account states in Redis)
// before it starts without it.
const pgStartWait = 5 * time.Second

// lateRecords is a cluster node that started while PostgreSQL did not
// answer. It decides mail as a node does during an outage: account states
// from the cluster's Redis, holds spooled on disk (Postfix holds the
// mail), the admin read-only, no trust entries (more held, not less). When
// PostgreSQL answers, catchUpRecords migrates its schema, brings this
// node's own records if it never did, reads the stored states and trust,
// and resumes the playbooks; the hold writer writes the spool by itself.
type lateRecords struct {
	pg       *postgres.Store
	local    *sqlite.Store
	startErr error
	ready    chan struct{} // closed once caught up
}

// recordsReady waits until PostgreSQL has been reached when the node
// started without it; false when ctx ended first.
func (d *Daemon) recordsReady(ctx context.Context) bool {
	if d.pgLate == nil {
		return true
	}
	select {
	case <-d.pgLate.ready:
		return true
	case <-ctx.Done():
		return false
	}
}

// lateStates are the account states a node that cannot read PostgreSQL
// at start decides with: every account's latest state shared in Redis,
// and, if this node never brought its own records into the cluster, the
// states it recorded while it ran alone (the later change wins). With
// neither PostgreSQL nor Redis the node cannot know which accounts are
// restricted, and does not start: a guard that lets a restricted account
// send is worse than a temporary failure Postfix retries.
func (d *Daemon) lateStates(ctx context.Context) (*ops.States, error) {
	l := d.pgLate
	lctx, cancel := context.WithTimeout(ctx, pgStartWait)
	changes, err := d.cluster.states.Load(lctx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("cluster: neither PostgreSQL nor Redis answers at start, so this node cannot know which accounts are restricted; it starts when either does (PostgreSQL: %v; Redis: %v)", l.startErr, err)
	}
	as := make([]store.Account, 0, len(changes))
	for _, c := range changes {
		as = append(as, c.Account)
	}
	if _, err := os.Stat(filepath.Join(d.cfg.DataDir, carriedMarker)); errors.Is(err, os.ErrNotExist) {
		own, err := listStates(ctx, l.local)
		if err != nil {
			return nil, fmt.Errorf("loading this node's own account states: %w", err)
		}
		as = append(as, own...)
	}
	states := ops.EmptyStates()
	states.Merge(as)
	d.cluster.degraded.WithLabelValues("records").Set(1)
	counts := states.Counts()
	d.log.Warn("cluster: PostgreSQL does not answer at start; deciding mail with the account states shared in Redis, holds spooled on disk, the admin read-only until it answers",
		"node", d.cluster.node, "restricted", counts[store.AccountRestricted], "locked", counts[store.AccountLocked], "watch", counts[store.AccountWatch], "err", l.startErr)
	return states, nil
}

// listStates returns every account of st that is not normal.
func listStates(ctx context.Context, st store.Accounts) ([]store.Account, error) {
	var out []store.Account
	for _, state := range []store.AccountState{store.AccountWatch, store.AccountRestricted, store.AccountLocked} {
		as, err := st.ListAccounts(ctx, store.AccountFilter{State: state, Limit: 1 << 30})
		if err != nil {
			return nil, err
		}
		out = append(out, as...)
	}
	return out, nil
}

// catchUpRecords waits for PostgreSQL (retrying with a back-off of 1 s
// doubling to 30 s), then migrates, brings this node's own records, reads
// the stored account states and trust entries, and resumes the playbooks.
// A database that answers and refuses (a newer schema, a wrong password)
// stops the node, as it would have at start.
func (d *Daemon) catchUpRecords(ctx context.Context) {
	l := d.pgLate
	wait := time.Second
	var warned time.Time
	pause := func(err error) bool {
		d.metrics.storeErrors.WithLabelValues("catchup").Inc()
		if time.Since(warned) >= time.Minute {
			warned = time.Now()
			d.log.Warn("cluster: PostgreSQL still does not answer; holds spooled, the admin read-only", "retry_in", wait, "err", err)
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
		return true
	}
	for {
		mctx, cancel := context.WithTimeout(ctx, pgStartWait)
		err := l.pg.Migrate(mctx)
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		if !postgres.Unreachable(err) {
			d.fail(fmt.Errorf("cluster.postgres: %w", err))
			return
		}
		if !pause(err) {
			return
		}
	}
	merged := 0
	for {
		err := d.carryRecords(ctx, l.local, l.pg)
		if err == nil {
			var as []store.Account
			if as, err = listStates(ctx, l.pg); err == nil {
				merged = d.ops.States.Merge(as)
				err = d.ops.ReloadTrust(ctx)
			}
		}
		if err == nil {
			break
		}
		if ctx.Err() != nil || !pause(err) {
			return
		}
	}
	d.cluster.degraded.WithLabelValues("records").Set(0)
	close(l.ready)
	d.log.Info("cluster: PostgreSQL answers; records shared again (schema migrated, account states and trust read)",
		"node", d.cluster.node, "schema", postgres.SchemaVersion(), "states_changed", merged)
	if merged > 0 {
		d.ops.HoldRestrictedQueued(ctx)
	}
	d.resumePlaybooks(ctx)
}

// resumePlaybooks goes on with the runs the last stop cut short and the
// steps that failed.
func (d *Daemon) resumePlaybooks(ctx context.Context) {
	if d.ops.Response == nil {
		return
	}
	if n, err := d.ops.ResumePlaybooks(ctx); err != nil {
		d.log.Warn("resuming playbooks failed", "err", err)
	} else if n > 0 {
		d.log.Info("playbooks resumed", "incidents", n)
	}
}

// fail stops the daemon with err, as a server that fails does.
func (d *Daemon) fail(err error) {
	select {
	case d.errc <- err:
	default:
	}
}
