package ops

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/auth"
	"github.com/mailbrake/mailbrake/internal/counter"
	"github.com/mailbrake/mailbrake/internal/store"
)

// Trusts is the in-memory view of trust entries the engine reads on every
// message (engine.TrustSource); ops keeps it in step with the store.
type Trusts struct {
	mu      sync.RWMutex
	entries []store.TrustEntry
}

// NewTrusts loads the entries valid now.
func NewTrusts(ctx context.Context, st store.Trust) (*Trusts, error) {
	es, err := st.ListTrust(ctx, time.Now())
	if err != nil {
		return nil, err
	}
	return &Trusts{entries: es}, nil
}

// Trusted implements engine.TrustSource.
func (t *Trusts) Trusted(account, family string, at time.Time) (time.Time, bool) {
	if t == nil {
		return time.Time{}, false
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, e := range t.entries {
		if e.Account == account && e.ClientFamily == family && at.Before(e.Until) {
			return e.Until, true
		}
	}
	return time.Time{}, false
}

func (t *Trusts) set(es []store.TrustEntry) {
	t.mu.Lock()
	t.entries = es
	t.mu.Unlock()
}

// Volume counts site-wide outbound mail per hour over the last day, for
// the dashboard.
type Volume struct {
	mu sync.Mutex
	h  [24]api.VolumePoint
}

func (v *Volume) slot(t time.Time) *api.VolumePoint {
	hour := t.UTC().Truncate(time.Hour)
	p := &v.h[hour.Unix()/3600%24]
	if !p.Time.Equal(hour) {
		*p = api.VolumePoint{Time: hour}
	}
	return p
}

// Add counts a message.
func (v *Volume) Add(t time.Time, rcpts int) {
	v.mu.Lock()
	p := v.slot(t)
	p.Messages++
	p.Recipients += int64(rcpts)
	v.mu.Unlock()
}

// AddHeld counts a held message.
func (v *Volume) AddHeld(t time.Time) {
	v.mu.Lock()
	v.slot(t).Held++
	v.mu.Unlock()
}

// Series returns the last 24 hours at now, oldest first, empty hours
// included.
func (v *Volume) Series(now time.Time) []api.VolumePoint {
	v.mu.Lock()
	defer v.mu.Unlock()
	cur := now.UTC().Truncate(time.Hour)
	out := make([]api.VolumePoint, 24)
	for i := range out {
		h := cur.Add(time.Duration(i-23) * time.Hour)
		p := v.h[h.Unix()/3600%24]
		if !p.Time.Equal(h) {
			p = api.VolumePoint{Time: h}
		}
		out[i] = p
	}
	return out
}

// ReleaseAndTrust implements api.Methods.
func (s *Service) ReleaseAndTrust(ctx context.Context, id int64, r api.TrustRequest) (*store.Hold, error) {
	if s.TrustStore == nil {
		return nil, fmt.Errorf("%w: trust entries are not available", api.ErrBadRequest)
	}
	d := r.Duration
	if d == 0 {
		d = 7 * 24 * time.Hour
	}
	if d < time.Minute || d > 90*24*time.Hour {
		return nil, fmt.Errorf("%w: trust lasts between 1 minute and 90 days", api.ErrBadRequest)
	}
	h, err := s.Store.GetHold(ctx, id)
	if err != nil {
		return nil, err
	}
	if h.Account == "" || h.Account == store.Unauthenticated || h.ClientFamily == "" {
		return nil, fmt.Errorf("%w: hold %d names no account and client to trust", api.ErrBadRequest, id)
	}
	released, err := s.ReleaseHold(ctx, id)
	if err != nil {
		return nil, err
	}
	actor := api.ActorFrom(ctx).Name
	now := s.now().UTC()
	e := store.TrustEntry{Account: h.Account, ClientFamily: h.ClientFamily, Until: now.Add(d), Created: now, By: actor, Note: r.Note, HoldID: id}
	if _, err := s.TrustStore.PutTrust(ctx, e); err != nil {
		return nil, err
	}
	if err := s.reloadTrust(ctx); err != nil {
		return nil, err
	}
	s.audit(ctx, actor, store.AuditTrustAdd, "account:"+h.Account, fmt.Sprintf("%s trusted until %s after releasing hold %d: %s", h.ClientFamily, e.Until.Format(time.RFC3339), id, r.Note))
	if s.Reviewed != nil {
		s.Reviewed(h, e.Until)
	}
	return released, nil
}

// ReloadTrust reads the trust entries from the store again (a node that
// started while its store did not answer, once it does).
func (s *Service) ReloadTrust(ctx context.Context) error { return s.reloadTrust(ctx) }

func (s *Service) reloadTrust(ctx context.Context) error {
	es, err := s.TrustStore.ListTrust(ctx, s.now())
	if err != nil {
		return err
	}
	if s.Trusts != nil {
		s.Trusts.set(es)
	}
	return nil
}

// ListTrust implements api.Methods.
func (s *Service) ListTrust(ctx context.Context) ([]store.TrustEntry, error) {
	if s.TrustStore == nil {
		return []store.TrustEntry{}, nil
	}
	return s.TrustStore.ListTrust(ctx, s.now())
}

// DeleteTrust implements api.Methods.
func (s *Service) DeleteTrust(ctx context.Context, id int64) error {
	if s.TrustStore == nil {
		return fmt.Errorf("%w: trust entries are not available", api.ErrBadRequest)
	}
	if err := s.TrustStore.DeleteTrust(ctx, id); err != nil {
		return err
	}
	s.audit(ctx, api.ActorFrom(ctx).Name, store.AuditTrustDelete, fmt.Sprintf("trust:%d", id), "")
	return s.reloadTrust(ctx)
}

// Dashboard implements api.Methods.
func (s *Service) Dashboard(ctx context.Context) (*api.Dashboard, error) {
	d := &api.Dashboard{}
	holds, err := s.Store.ListHolds(ctx, store.HoldFilter{State: store.HoldHeld, Limit: 10000})
	if err != nil {
		return nil, err
	}
	d.Held = len(holds)
	for _, st := range []struct {
		state store.AccountState
		n     *int
	}{{store.AccountRestricted, &d.Restricted}, {store.AccountLocked, &d.Locked}} {
		as, err := s.Accounts.ListAccounts(ctx, store.AccountFilter{State: st.state, Limit: 100000})
		if err != nil {
			return nil, err
		}
		*st.n = len(as)
	}
	if s.Response != nil {
		incs, err := s.Response.Incidents.ListIncidents(ctx, store.IncidentFilter{Active: true, Limit: 10000})
		if err != nil {
			return nil, err
		}
		d.ActiveIncidents = len(incs)
	}
	if s.Volume != nil {
		d.Volume = s.Volume.Series(s.now())
	} else {
		d.Volume = []api.VolumePoint{}
	}
	return d, nil
}

// Timeline resolutions: the last day by the hour, and the last six hours by
// five minutes (the counters' day buckets), where a ten-minute attack shows
// as the two or three columns it was.
const (
	recentSpan = 6 * time.Hour
	recentStep = 5 * time.Minute
)

// series is a run of empty points of one step ending with the one holding
// now, and where a time falls in it.
type series struct {
	points []api.VolumePoint
	first  time.Time
	step   time.Duration
}

func newSeries(now time.Time, step time.Duration, n int) series {
	cur := now.Truncate(step)
	s := series{points: make([]api.VolumePoint, n), first: cur.Add(-time.Duration(n-1) * step), step: step}
	for i := range s.points {
		s.points[i].Time = s.first.Add(time.Duration(i) * step)
	}
	return s
}

// at is the point holding t, or nil outside the series.
func (s series) at(t time.Time) *api.VolumePoint {
	t = t.UTC()
	if t.Before(s.first) {
		return nil
	}
	i := int(t.Sub(s.first) / s.step)
	if i >= len(s.points) {
		return nil
	}
	return &s.points[i]
}

// AccountTimeline implements api.Methods: the account's last 24 hours,
// hourly, and its last 6 hours by five minutes, with its holds, state
// changes and incidents.
func (s *Service) AccountTimeline(ctx context.Context, name string) (*api.Timeline, error) {
	name = strings.ToLower(strings.TrimSpace(name))
	if name == "" {
		return nil, fmt.Errorf("%w: account name is empty", api.ErrBadRequest)
	}
	now := s.now().UTC()
	since := now.Add(-24 * time.Hour)
	day, recent := newSeries(now, time.Hour, 24), newSeries(now, recentStep, int(recentSpan/recentStep))
	tl := &api.Timeline{Points: day.points, Recent: recent.points, Events: []api.TimelineEvent{}}
	if c, ok := s.Counters.(interface {
		Series(string, time.Time) []counter.Point
	}); ok {
		for _, p := range c.Series(name, now) {
			for _, sr := range []series{day, recent} {
				if v := sr.at(p.Time); v != nil {
					v.Messages += p.Messages
					v.Recipients += p.Recipients
				}
			}
		}
	}
	holds, err := s.Store.ListHolds(ctx, store.HoldFilter{Account: name, Since: since, Limit: 1000})
	if err != nil {
		return nil, err
	}
	for _, h := range holds {
		for _, sr := range []series{day, recent} {
			if v := sr.at(h.HeldAt); v != nil {
				v.Held++
			}
		}
		tl.Events = append(tl.Events, api.TimelineEvent{Time: h.HeldAt, Kind: "hold", Text: fmt.Sprintf("hold %d: %s (%d recipients)", h.ID, strings.Join(h.Reasons, ", "), h.RecipientCount)})
	}
	audit, err := s.Audit.ListAudit(ctx, store.AuditFilter{Target: "account:" + name, Since: since, Limit: 200})
	if err != nil {
		return nil, err
	}
	for _, e := range audit {
		if e.Action == store.AuditAccountState || e.Action == store.AuditAccountUnlock {
			tl.Events = append(tl.Events, api.TimelineEvent{Time: e.Time, Kind: "state", Text: e.Detail})
		}
	}
	if s.Response != nil {
		incs, err := s.Response.Incidents.ListIncidents(ctx, store.IncidentFilter{Account: name, Limit: 50})
		if err != nil {
			return nil, err
		}
		for _, in := range incs {
			if in.Opened.After(since) {
				tl.Events = append(tl.Events, api.TimelineEvent{Time: in.Opened, Kind: "incident", Text: fmt.Sprintf("incident %d opened (%s): %s", in.ID, in.Severity, strings.Join(in.Reasons, ", "))})
			}
		}
	}
	sort.SliceStable(tl.Events, func(i, j int) bool { return tl.Events[i].Time.Before(tl.Events[j].Time) })
	return tl, nil
}

// Config implements api.Methods: the effective configuration, with
// secrets redacted.
func (s *Service) Config(context.Context) (string, error) {
	if s.ConfigText == nil {
		return "", fmt.Errorf("%w: configuration not available", api.ErrBadRequest)
	}
	return s.ConfigText(), nil
}

// ListUsers implements api.Methods.
func (s *Service) ListUsers(ctx context.Context) ([]store.User, error) {
	if s.Users == nil {
		return nil, fmt.Errorf("%w: users are not available", api.ErrBadRequest)
	}
	return s.Users.ListUsers(ctx)
}

// PutUser implements api.Methods.
func (s *Service) PutUser(ctx context.Context, r api.PutUserRequest) (*store.User, error) {
	if s.Users == nil {
		return nil, fmt.Errorf("%w: users are not available", api.ErrBadRequest)
	}
	if !auth.ValidName(r.Name) {
		return nil, fmt.Errorf("%w: a user name has 1 to 64 letters, digits, '.', '_', '-' or '@'", api.ErrBadRequest)
	}
	if r.Role != "" && !auth.Role(r.Role).Valid() {
		return nil, fmt.Errorf("%w: role must be admin, helpdesk or viewer", api.ErrBadRequest)
	}
	now := s.now().UTC()
	u, err := s.Users.GetUser(ctx, r.Name)
	if errors.Is(err, store.ErrNotFound) {
		if r.Role == "" || r.Password == "" {
			return nil, fmt.Errorf("%w: a new user needs a role and a password", api.ErrBadRequest)
		}
		u, err = &store.User{Name: r.Name, Created: now}, nil
	}
	if err != nil {
		return nil, err
	}
	var changed []string
	if r.Role != "" && r.Role != u.Role {
		u.Role = r.Role
		changed = append(changed, "role "+r.Role)
	}
	if r.Password != "" {
		h, err := auth.HashPassword(r.Password)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", api.ErrBadRequest, err)
		}
		u.Hash = h
		changed = append(changed, "password")
	}
	u.Updated = now
	if err := s.Users.PutUser(ctx, *u); err != nil {
		return nil, err
	}
	s.endSessions(ctx, u.Name)
	s.audit(ctx, api.ActorFrom(ctx).Name, store.AuditUser, "user:"+u.Name, "set "+strings.Join(changed, ", "))
	u.Hash = ""
	return u, nil
}

// RemoveUser implements api.Methods.
func (s *Service) RemoveUser(ctx context.Context, name string) error {
	if s.Users == nil {
		return fmt.Errorf("%w: users are not available", api.ErrBadRequest)
	}
	if err := s.Users.DeleteUser(ctx, name); err != nil {
		return err
	}
	s.endSessions(ctx, name)
	s.audit(ctx, api.ActorFrom(ctx).Name, store.AuditUser, "user:"+name, "removed")
	// The API tokens the user created go with the user: a removed admin's
	// script must not keep the admin's rights.
	ts, err := s.Users.ListTokens(ctx)
	if err != nil {
		return fmt.Errorf("user removed, but listing their API tokens failed: %w", err)
	}
	for _, t := range ts {
		if t.By != "web:"+name && t.By != name {
			continue
		}
		if err := s.Users.DeleteToken(ctx, t.ID); err != nil {
			return fmt.Errorf("user removed, but revoking their API token %s failed: %w", t.ID, err)
		}
		s.audit(ctx, api.ActorFrom(ctx).Name, store.AuditToken, "token:"+t.ID, fmt.Sprintf("revoked with its creator %s", name))
	}
	return nil
}

// endSessions ends a changed or removed user's sessions on every node. A
// failure is logged, not the request's: the change is made, and a session
// whose user changed since it began is refused anyway.
func (s *Service) endSessions(ctx context.Context, name string) {
	if s.Sessions == nil {
		return
	}
	if err := s.Sessions.EndSessions(ctx, name); err != nil {
		s.Log.Warn("ending a changed user's sessions failed; each is refused at its next request, its user having changed", "user", name, "err", err)
	}
}

// ListTokens implements api.Methods.
func (s *Service) ListTokens(ctx context.Context) ([]store.Token, error) {
	if s.Users == nil {
		return nil, fmt.Errorf("%w: tokens are not available", api.ErrBadRequest)
	}
	return s.Users.ListTokens(ctx)
}

// CreateToken implements api.Methods.
func (s *Service) CreateToken(ctx context.Context, r api.CreateTokenRequest) (*api.NewToken, error) {
	if s.Tokens == nil {
		return nil, fmt.Errorf("%w: tokens are not available", api.ErrBadRequest)
	}
	if r.TTL < 0 {
		return nil, fmt.Errorf("%w: ttl must not be negative", api.ErrBadRequest)
	}
	actor := api.ActorFrom(ctx).Name
	t, secret, err := s.Tokens.CreateToken(ctx, r.Name, auth.Role(r.Role), r.TTL, actor)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", api.ErrBadRequest, err)
	}
	s.audit(ctx, actor, store.AuditToken, "token:"+t.ID, fmt.Sprintf("created %q, role %s", t.Name, t.Role))
	return &api.NewToken{Token: t, Secret: secret}, nil
}

// RevokeToken implements api.Methods.
func (s *Service) RevokeToken(ctx context.Context, id string) error {
	if s.Users == nil {
		return fmt.Errorf("%w: tokens are not available", api.ErrBadRequest)
	}
	if err := s.Users.DeleteToken(ctx, id); err != nil {
		return err
	}
	s.audit(ctx, api.ActorFrom(ctx).Name, store.AuditToken, "token:"+id, "revoked")
	return nil
}
