// Package pwleak is the password-leak detector: it tests the candidate
// strings of an outbound message (internal/leakscan) against the sending
// account's own password hash from the directory (internal/pwhash), so a
// user who mails out their password is caught without mailbrake ever
// holding a plaintext password.
//
// Hashes are fetched through HashSources (LDAP, a Dovecot passwd-file) and
// cached per account for CacheTTL, so a changed password is picked up
// within that time. Fast schemes (salted digests, as Zimbra's {SSHA512})
// are checked inline against every candidate. Slow schemes (crypt family,
// bcrypt, argon2, PBKDF2) are checked inline, most likely candidates
// first, for at most InlineBudget; the rest of the first
// MaxSlowCandidates go to a bounded background pool that reports a late
// match through OnLateMatch (the message is gone by then, but the
// incident still opens). Candidates already checked against an account's
// current hash are remembered as keyed HMACs, so a long thread is not
// re-hashed.
//
// A match is reported as a finding with reason password-leak whose
// evidence says where the password was found, never what it is; the
// matched candidate is put in Submission.Secrets so the caller masks it
// in previews, and is cleared after.
//
// The policy path carries no message content: there the detector does
// nothing. It does not decide what a finding leads to (the configuration
// and the playbooks do).
package pwleak

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mailbrake/mailbrake/internal/engine"
	"github.com/mailbrake/mailbrake/internal/leakscan"
	"github.com/mailbrake/mailbrake/internal/pwhash"
	"github.com/mailbrake/mailbrake/internal/verdict"
)

// ReasonPasswordLeak: an outbound message contains the sender's own
// password.
const ReasonPasswordLeak engine.Reason = "password-leak"

// ErrNoSuchAccount is returned by a HashSource that does not know the
// account; the next source is asked.
var ErrNoSuchAccount = errors.New("no such account")

// HashSource returns an account's stored password hash ("{SSHA512}…").
type HashSource interface {
	Name() string
	PasswordHash(ctx context.Context, account string) (string, error)
}

// Options configures a Detector.
type Options struct {
	Sources           []HashSource
	CacheTTL          time.Duration // default 5 min
	InlineBudget      time.Duration // slow schemes, per message; default 50 ms
	MaxSlowCandidates int           // default 50
	Workers           int           // background pool for slow schemes; default 2
	Queue             int           // background jobs waiting; default 64
	Extract           leakscan.Options
	Action            engine.Action
	Score             int
	DryRun            bool
	// OnLateMatch is called from the background pool when a slow check
	// finds the password after the message was decided.
	OnLateMatch func(account, queueID string, f engine.Finding)
	Log         *slog.Logger
	Now         func() time.Time
}

type cached struct {
	hash    *pwhash.Hash // nil: unknown account or unusable hash
	stored  [32]byte     // SHA-256 of the stored string, to notice a change
	fetched time.Time
	checked map[uint64]struct{} // HMACs of candidates checked against hash
}

// Detector implements engine.Detector.
type Detector struct {
	o     Options
	key   [32]byte // keys the checked-candidate HMACs; per process
	mu    sync.Mutex
	cache map[string]*cached
	// flights are the directory lookups going on, by account: a burst of
	// one account's messages makes one lookup, not one each.
	flights map[string]*flight
	warn    sync.Map // account → scheme error already logged
	jobs    chan job
	wg      sync.WaitGroup
	stop    chan struct{}
	once    sync.Once
}

type job struct {
	account, queueID string
	hash             *pwhash.Hash
	stored           [32]byte
	cands            [][]byte
	where            []string
}

// maxCheckedPerAccount bounds the remembered candidate HMACs per account.
const maxCheckedPerAccount = 20000

// New returns a Detector and starts its background pool; Close stops it.
func New(o Options) *Detector {
	if o.CacheTTL <= 0 {
		o.CacheTTL = 5 * time.Minute
	}
	if o.InlineBudget <= 0 {
		o.InlineBudget = 50 * time.Millisecond
	}
	if o.MaxSlowCandidates <= 0 {
		o.MaxSlowCandidates = 50
	}
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.Queue <= 0 {
		o.Queue = 64
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	d := &Detector{o: o, cache: map[string]*cached{}, flights: map[string]*flight{}, jobs: make(chan job, o.Queue), stop: make(chan struct{})}
	rand.Read(d.key[:])
	for range o.Workers {
		d.wg.Add(1)
		go d.worker()
	}
	return d
}

// Close stops the background pool, dropping queued checks.
func (d *Detector) Close() {
	d.once.Do(func() { close(d.stop) })
	d.wg.Wait()
}

// Inbound implements engine.Detector.
func (d *Detector) Inbound(context.Context, *engine.Submission) []engine.Finding { return nil }

// Outbound implements engine.Detector.
func (d *Detector) Outbound(ctx context.Context, sub *engine.Submission) []engine.Finding {
	if sub.Body == nil || sub.Account == engine.Unauthenticated {
		return nil
	}
	c, err := d.lookup(ctx, sub.Account)
	if err != nil {
		d.o.Log.Warn("password-leak check skipped: password hash not available", "account", sub.Account, "err", err)
		return nil
	}
	if c == nil || c.hash == nil {
		return nil
	}
	res, err := leakscan.Extract(bytes.NewReader(sub.Body), d.o.Extract)
	if err != nil {
		return nil
	}
	defer func() {
		for _, cd := range res.Candidates {
			clear(cd.Value)
		}
	}()
	if c.hash.Cost() == pwhash.Fast {
		for i, cd := range res.Candidates {
			if c.hash.Verify(cd.Value) {
				return d.found(sub, cd.Value, i, cd.Source)
			}
		}
		return nil
	}
	// Slow scheme: most likely first, within the budget, then the pool.
	n := min(len(res.Candidates), d.o.MaxSlowCandidates)
	deadline := d.o.Now().Add(d.o.InlineBudget)
	i := 0
	for ; i < n; i++ {
		if !d.o.Now().Before(deadline) {
			break
		}
		cd := res.Candidates[i]
		tag := d.tag(sub.Account, cd.Value)
		if d.wasChecked(sub.Account, c, tag) {
			continue
		}
		ok := c.hash.Verify(cd.Value)
		d.markChecked(sub.Account, c, tag)
		if ok {
			return d.found(sub, cd.Value, i, cd.Source)
		}
	}
	if i < n {
		j := job{account: sub.Account, queueID: sub.QueueID, hash: c.hash, stored: c.stored}
		for ; i < n; i++ {
			j.cands = append(j.cands, bytes.Clone(res.Candidates[i].Value))
			j.where = append(j.where, fmt.Sprintf("candidate %d (%s)", i+1, res.Candidates[i].Source))
		}
		select {
		case d.jobs <- j:
		default:
			for _, v := range j.cands {
				clear(v)
			}
			d.o.Log.Warn("password-leak background queue full; remaining candidates not checked", "account", sub.Account, "queue_id", sub.QueueID, "candidates", len(j.cands))
		}
	}
	return nil
}

func (d *Detector) found(sub *engine.Submission, secret []byte, i int, src leakscan.Source) []engine.Finding {
	sub.Secrets = append(sub.Secrets, bytes.Clone(secret))
	return []engine.Finding{{Rule: "password-leak", Reason: ReasonPasswordLeak, Family: verdict.Secret, Action: d.o.Action, Score: d.o.Score, DryRun: d.o.DryRun,
		Evidence: fmt.Sprintf("the sender's own password is in the message (candidate %d, from a %s)", i+1, src)}}
}

func (d *Detector) worker() {
	defer d.wg.Done()
	for {
		select {
		case <-d.stop:
			return
		case j := <-d.jobs:
			d.runJob(j)
		}
	}
}

func (d *Detector) runJob(j job) {
	defer func() {
		for _, v := range j.cands {
			clear(v)
		}
	}()
	c := d.current(j.account, j.stored)
	for i, v := range j.cands {
		select {
		case <-d.stop:
			return
		default:
		}
		tag := d.tag(j.account, v)
		if c != nil && d.wasChecked(j.account, c, tag) {
			continue
		}
		ok := j.hash.Verify(v)
		if c != nil {
			d.markChecked(j.account, c, tag)
		}
		if ok {
			f := engine.Finding{Rule: "password-leak", Reason: ReasonPasswordLeak, Family: verdict.Secret, Action: d.o.Action, Score: d.o.Score, DryRun: d.o.DryRun,
				Evidence: "the sender's own password is in the message (" + j.where[i] + ", found after delivery by the background check)"}
			d.o.Log.Warn("password leak found after the message was decided", "account", j.account, "queue_id", j.queueID)
			if d.o.OnLateMatch != nil {
				d.o.OnLateMatch(j.account, j.queueID, f)
			}
			return
		}
	}
}

// lookup returns the account's cached hash, fetching it when stale. Callers
// asking for the same account while it is fetched wait for that one
// lookup: a burst of one account's messages asks the directory once.
func (d *Detector) lookup(ctx context.Context, account string) (*cached, error) {
	now := d.o.Now()
	d.mu.Lock()
	c := d.cache[account]
	if c != nil && now.Sub(c.fetched) < d.o.CacheTTL {
		d.mu.Unlock()
		return c, nil
	}
	if f := d.flights[account]; f != nil {
		d.mu.Unlock()
		select {
		case <-f.done:
			return f.c, f.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f := &flight{done: make(chan struct{})}
	d.flights[account] = f
	d.mu.Unlock()
	f.c, f.err = d.refresh(ctx, account, c, now)
	d.mu.Lock()
	delete(d.flights, account) // the cache holds the answer by now
	d.mu.Unlock()
	close(f.done)
	return f.c, f.err
}

// flight is one directory lookup others wait for.
type flight struct {
	done chan struct{}
	c    *cached
	err  error
}

// refresh fetches the account's hash and caches it; old is the stale entry.
func (d *Detector) refresh(ctx context.Context, account string, old *cached, now time.Time) (*cached, error) {
	stored, err := d.fetch(ctx, account)
	if err != nil && !errors.Is(err, ErrNoSuchAccount) {
		if old != nil {
			return old, nil // keep using the last hash while the directory is down
		}
		return nil, err
	}
	nc := &cached{fetched: now}
	if stored != "" {
		nc.stored = sha256.Sum256([]byte(stored))
		h, perr := pwhash.Parse(stored)
		if perr != nil {
			if _, logged := d.warn.LoadOrStore(account, true); !logged {
				d.o.Log.Warn("password-leak check skipped for this account: unusable password hash", "account", account, "err", perr)
			}
		} else {
			nc.hash = h
		}
	}
	d.mu.Lock()
	if old != nil && old.stored == nc.stored {
		// Same password: keep what was already checked against it.
		nc.checked = old.checked
	}
	d.cache[account] = nc
	if len(d.cache) > 100000 {
		for k, v := range d.cache {
			if now.Sub(v.fetched) >= d.o.CacheTTL {
				delete(d.cache, k)
			}
		}
	}
	d.mu.Unlock()
	return nc, nil
}

func (d *Detector) fetch(ctx context.Context, account string) (string, error) {
	var errs []error
	for _, s := range d.o.Sources {
		stored, err := s.PasswordHash(ctx, account)
		if err == nil {
			return stored, nil
		}
		if !errors.Is(err, ErrNoSuchAccount) {
			errs = append(errs, fmt.Errorf("%s: %w", s.Name(), err))
		}
	}
	if len(errs) > 0 {
		return "", errors.Join(errs...)
	}
	return "", ErrNoSuchAccount
}

// current returns the cache entry if it still holds the hash stored.
func (d *Detector) current(account string, stored [32]byte) *cached {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.cache[account]; c != nil && c.stored == stored {
		return c
	}
	return nil
}

func (d *Detector) tag(account string, v []byte) uint64 {
	m := hmac.New(sha256.New, d.key[:])
	m.Write([]byte(account))
	m.Write([]byte{0})
	m.Write(v)
	var sum [32]byte
	return binary.LittleEndian.Uint64(m.Sum(sum[:0]))
}

func (d *Detector) wasChecked(account string, c *cached, tag uint64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := c.checked[tag]
	return ok
}

func (d *Detector) markChecked(account string, c *cached, tag uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c.checked == nil {
		c.checked = map[uint64]struct{}{}
	}
	if len(c.checked) >= maxCheckedPerAccount {
		clear(c.checked)
	}
	c.checked[tag] = struct{}{}
}
