package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/auth"
	"github.com/mailbrake/mailbrake/internal/store"
)

// Sentinels that must never show where they do not belong.
const (
	previewSentinel  = "PREVIEW-SENTINEL-c0ffee"
	headersSentinel  = "HEADERS-SENTINEL-deadbeef"
	passwordSentinel = "PASSWORD-SENTINEL-9f8e7d"
	tokenSentinel    = "TOKEN-SENTINEL-5a5a5a"
)

var t0 = time.Date(2025, 3, 4, 12, 0, 0, 0, time.UTC)

// fakeMethods is an in-memory api.Methods. The embedded interface is nil:
// a method the UI does not use panics if called.
type fakeMethods struct {
	retired []string // nodes retired
	api.Methods

	mu        sync.Mutex
	holds     map[int64]*store.Hold
	accounts  map[string]*store.Account
	incidents map[int64]*store.Incident
	lastList  api.ListHoldsRequest
	lastBulk  api.BulkHoldsRequest
	actors    []api.Actor
	changes   atomic.Int32 // state-changing calls
	status    api.Status
	nodes     *api.NodeList // nil: this node alone
	// nodeDown is a node that does not answer: a release or delete of
	// its holds fails as quarantine's does (ErrUnavailable).
	nodeDown string
	// storeDown makes every read fail with a driver's error, which
	// Explain turns into words, as ops does while the store is down.
	storeDown bool
}

// driverError is what a read fails with while storeDown.
const driverError = "dial tcp 192.0.2.7:5432: connect: connection refused"

func (f *fakeMethods) Status(context.Context) (*api.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.status
	return &st, nil
}

func (f *fakeMethods) RetireNode(_ context.Context, name string) (*api.RetiredNode, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.retired = append(f.retired, name)
	return &api.RetiredNode{Node: name, Holds: 2, Commands: 1}, nil
}

func (f *fakeMethods) ListNodes(context.Context) (*api.NodeList, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.nodes == nil {
		return &api.NodeList{Nodes: []api.Node{{Name: "mx1.example.org", State: api.NodeUp, SeenAt: t0, Version: "test", Self: true}}, DownAfterSeconds: 15}, nil
	}
	l := *f.nodes
	return &l, nil
}

// Explain implements api.Explainer as ops does: the store's errors while
// it is down become ErrUnavailable in words.
func (f *fakeMethods) Explain(_ context.Context, err error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.storeDown && err != nil && strings.Contains(err.Error(), driverError) {
		return fmt.Errorf("PostgreSQL does not answer: mailbrake's records can be neither read nor changed until it is back (%w)", api.ErrUnavailable)
	}
	return err
}

func newFakeMethods() *fakeMethods {
	f := &fakeMethods{holds: map[int64]*store.Hold{}, accounts: map[string]*store.Account{}, incidents: map[int64]*store.Incident{}}
	add := func(h store.Hold) { f.holds[h.ID] = &h }
	add(store.Hold{ID: 1, QueueID: "4XyZ1", Path: "milter", Account: "alice@example.org", Sender: "alice@example.org",
		Recipients: []string{"a@example.net", "b@example.net"}, RecipientCount: 2, Subject: "Invoice overdue", Client: "Python/3.11 aiosmtplib",
		ClientFamily: "scripted", ClientAddress: "203.0.113.9", Reasons: []string{"bulk-from-scripted-client"}, Size: 2048,
		Headers: "X-Mailer: " + headersSentinel, Preview: "Dear customer " + previewSentinel, HeldAt: t0, State: store.HoldHeld, StateAt: t0})
	add(store.Hold{ID: 2, QueueID: "4XyZ2", Path: "policy", Account: "alice@example.org", Sender: "alice@example.org", RecipientCount: 40,
		ClientFamily: "scripted", Reasons: []string{"rate-recipients-1h"}, HeldAt: t0.Add(time.Minute), State: store.HoldHeld, StateAt: t0})
	add(store.Hold{ID: 3, QueueID: "4XyZ3", Path: "policy", Account: "<script>alert(1)</script>@example.org", Sender: "x@example.org",
		RecipientCount: 1, Reasons: []string{"rate-messages-1h"}, HeldAt: t0, State: store.HoldReleased, StateAt: t0, StateBy: "web:admin"})
	f.accounts["alice@example.org"] = &store.Account{Name: "alice@example.org", State: store.AccountLocked, StateAt: t0, StateBy: "playbook", Reason: "contain-mass-sending"}
	f.accounts["bob@example.org"] = &store.Account{Name: "bob@example.org", State: store.AccountWatch, StateAt: t0}
	f.incidents[7] = &store.Incident{ID: 7, Account: "alice@example.org", State: store.IncidentOpen, Severity: store.SeverityHigh,
		Playbook: "contain-mass-sending", Reasons: []string{"bulk-from-scripted-client"},
		Evidence: []store.Evidence{{Time: t0, Reason: "bulk-from-scripted-client", Detail: "40 recipients in 2 messages", HoldID: 1, QueueID: "4XyZ1", By: "system"}},
		Steps: []store.StepRecord{{Name: "restrict-sending", Status: store.StepDone, Attempts: 1, At: t0},
			{Name: "lock-login", Status: store.StepPending, At: t0}, {Name: "notify", Status: store.StepFailed, Attempts: 3, Detail: "webhook: 502", At: t0}},
		Opened: t0, Updated: t0}
	return f
}

func (f *fakeMethods) change(ctx context.Context) {
	f.changes.Add(1)
	f.mu.Lock()
	f.actors = append(f.actors, api.ActorFrom(ctx))
	f.mu.Unlock()
}

func (f *fakeMethods) ListHolds(_ context.Context, r api.ListHoldsRequest) (*api.HoldList, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastList = r
	if r.State != "" && r.State != "all" && !store.HoldState(r.State).Valid() {
		return nil, fmt.Errorf("%w: state must be held, released, deleted, expired or all", api.ErrBadRequest)
	}
	var out []store.Hold
	for _, h := range f.holds {
		if (r.State == "" || r.State == "all" || string(h.State) == r.State) && (r.Account == "" || h.Account == r.Account) {
			out = append(out, *h) // content included: the UI must not show it
		}
	}
	slices.SortFunc(out, func(a, b store.Hold) int { return int(b.ID - a.ID) })
	l := &api.HoldList{Holds: out, Total: len(out)}
	if len(out) > 0 {
		l.Newest = out[0].ID
	}
	return l, nil
}

// BulkHolds acts as ops does on the fake's holds: the held ones of the
// account (or all) through the ID seen, refused when more match than
// confirmed.
func (f *fakeMethods) BulkHolds(ctx context.Context, r api.BulkHoldsRequest) (*api.BulkHoldsResult, error) {
	f.mu.Lock()
	f.lastBulk = r
	var ids []int64
	for id, h := range f.holds {
		if h.State == store.HoldHeld && (r.Filter.Account == "" || h.Account == r.Filter.Account) && id <= r.Through {
			ids = append(ids, id)
		}
	}
	f.mu.Unlock()
	if r.Action != "release" && r.Action != "delete" {
		return nil, fmt.Errorf("%w: action must be release or delete", api.ErrBadRequest)
	}
	if len(ids) > r.Expect {
		return nil, fmt.Errorf("%w: %d held messages match now, %d were confirmed: look at the list again", api.ErrConflict, len(ids), r.Expect)
	}
	res := &api.BulkHoldsResult{Action: r.Action, Matched: len(ids), Through: r.Through}
	to := map[string]store.HoldState{"release": store.HoldReleased, "delete": store.HoldDeleted}[r.Action]
	for _, id := range ids {
		if _, err := f.setHold(ctx, id, to); err != nil {
			res.Failed = append(res.Failed, api.BulkFailure{ID: id, Error: err.Error()})
			continue
		}
		res.Done++
	}
	return res, nil
}

func (f *fakeMethods) GetHold(_ context.Context, id int64) (*store.Hold, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h, ok := f.holds[id]
	if !ok {
		return nil, fmt.Errorf("hold %d: %w", id, api.ErrNotFound)
	}
	c := *h // content included even for NoContent actors: the UI must strip it
	return &c, nil
}

func (f *fakeMethods) setHold(ctx context.Context, id int64, to store.HoldState) (*store.Hold, error) {
	f.change(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	h, ok := f.holds[id]
	if !ok {
		return nil, fmt.Errorf("hold %d: %w", id, api.ErrNotFound)
	}
	if h.State != store.HoldHeld {
		return nil, fmt.Errorf("%w: hold %d is %s", api.ErrConflict, id, h.State)
	}
	if h.Node != "" && h.Node == f.nodeDown {
		return nil, fmt.Errorf("hold %d: node %s has not carried out command 17 after 15s; it will when it is back (the node that holds the message has not answered: %w)", id, h.Node, api.ErrUnavailable)
	}
	h.State, h.StateAt, h.StateBy = to, t0, api.ActorFrom(ctx).Name
	c := *h
	return &c, nil
}

func (f *fakeMethods) ReleaseHold(ctx context.Context, id int64) (*store.Hold, error) {
	return f.setHold(ctx, id, store.HoldReleased)
}

func (f *fakeMethods) DeleteHold(ctx context.Context, id int64) (*store.Hold, error) {
	return f.setHold(ctx, id, store.HoldDeleted)
}

func (f *fakeMethods) MarkHoldSpam(ctx context.Context, id int64, note string) (*store.Incident, error) {
	if _, err := f.setHold(ctx, id, store.HoldDeleted); err != nil {
		return nil, err
	}
	return f.GetIncident(ctx, 7)
}

func (f *fakeMethods) ReleaseAndTrust(ctx context.Context, id int64, r api.TrustRequest) (*store.Hold, error) {
	if r.Duration < time.Minute || r.Duration > 90*24*time.Hour {
		return nil, fmt.Errorf("%w: trust lasts between 1 minute and 90 days", api.ErrBadRequest)
	}
	return f.setHold(ctx, id, store.HoldReleased)
}

func (f *fakeMethods) ListAudit(_ context.Context, fl store.AuditFilter) ([]store.AuditEntry, error) {
	return []store.AuditEntry{
		{ID: 2, Time: t0, Actor: "web:admin", Action: "quarantine-release", Target: "hold:1"},
		{ID: 1, Time: t0, Actor: "system", Action: "account-state", Target: "account:alice@example.org", Detail: "locked"},
	}, nil
}

func (f *fakeMethods) ListAccounts(_ context.Context, r api.ListAccountsRequest) ([]store.Account, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.State != "" && r.State != "all" && !store.AccountState(r.State).Valid() {
		return nil, fmt.Errorf("%w: state must be normal, watch, restricted, locked or all", api.ErrBadRequest)
	}
	var out []store.Account
	for _, a := range f.accounts {
		if r.State == "" || r.State == "all" || string(a.State) == r.State {
			out = append(out, *a)
		}
	}
	slices.SortFunc(out, func(a, b store.Account) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (f *fakeMethods) GetAccount(_ context.Context, name string) (*api.AccountDetail, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := &api.AccountDetail{Account: store.Account{Name: name, State: store.AccountNormal}}
	if a, ok := f.accounts[name]; ok {
		d.Account = *a
	}
	d.Counters = store.Totals{Messages1h: 3, Recipients1h: 80, Messages24h: 9, Recipients24h: 120}
	d.Baseline = &api.AccountBaseline{HistoryDays: 14, DayRecipientsMedian: 12, PeakHourRecipientsP90: 4.5, ClientFamilies: []string{"zimbra-ajax"}}
	d.Novelty = &api.AccountNovelty{FirstTime1h: 2, FirstTime24h: 5, Distinct1h: 3, Distinct24h: 9, Known: 140, Tracked: "336h0m0s"}
	d.Score = &api.AccountScore{Total: 10, Messages: 1, Families: map[string]int64{"volume": 5, "scripted": 5}, Window: "24h", WatchScore: 5, RestrictScore: 10}
	for _, h := range f.holds {
		if h.Account == name {
			d.RecentHolds = append(d.RecentHolds, *h) // content included: the UI must not show it
		}
	}
	d.History = []store.AuditEntry{{Time: t0, Actor: "playbook", Action: "account-state", Target: "account:" + name, Detail: "locked"}}
	return d, nil
}

func (f *fakeMethods) SetAccountState(ctx context.Context, r api.SetAccountStateRequest) (*store.Account, error) {
	f.change(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	if a, ok := f.accounts[r.Account]; ok && a.State == store.AccountLocked {
		return nil, fmt.Errorf("%w: %s is locked; a lock ends with unlock once the password has changed", api.ErrConflict, r.Account)
	}
	a := &store.Account{Name: r.Account, State: store.AccountState(r.State), StateAt: t0, Reason: r.Reason}
	f.accounts[r.Account] = a
	c := *a
	return &c, nil
}

// unlockRefusal is the fake's refusal of an unlock without override.
const unlockRefusal = "was locked 5m0s ago; a lock lasts at least 1h0m0s"

func (f *fakeMethods) UnlockAccount(ctx context.Context, r api.UnlockAccountRequest) (*store.Account, error) {
	f.change(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.accounts[r.Account]
	if !ok || a.State != store.AccountLocked {
		return nil, fmt.Errorf("%w: %s is not locked", api.ErrConflict, r.Account)
	}
	if !r.Override {
		return nil, fmt.Errorf("%w: %s %s", api.ErrConflict, r.Account, unlockRefusal)
	}
	if r.Reason == "" {
		return nil, fmt.Errorf("%w: an override needs a reason", api.ErrBadRequest)
	}
	a.State = store.AccountNormal
	c := *a
	return &c, nil
}

func (f *fakeMethods) ListIncidents(_ context.Context, r api.ListIncidentsRequest) ([]store.Incident, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []store.Incident
	for _, in := range f.incidents {
		if (r.Account == "" || in.Account == r.Account) && (r.State == "all" || r.State == "" ||
			(r.State == "active" && in.State.Active()) || string(in.State) == r.State) {
			out = append(out, *in)
		}
	}
	return out, nil
}

func (f *fakeMethods) GetIncident(_ context.Context, id int64) (*store.Incident, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, ok := f.incidents[id]
	if !ok {
		return nil, fmt.Errorf("incident %d: %w", id, api.ErrNotFound)
	}
	c := *in
	return &c, nil
}

func (f *fakeMethods) OpenIncident(ctx context.Context, r api.OpenIncidentRequest) (*store.Incident, error) {
	f.change(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	in := &store.Incident{ID: int64(100 + len(f.incidents)), Account: r.Account, State: store.IncidentConfirmed, Severity: store.SeverityHigh, Opened: t0, Updated: t0}
	f.incidents[in.ID] = in
	c := *in
	return &c, nil
}

func (f *fakeMethods) ChangeIncident(ctx context.Context, r api.ChangeIncidentRequest) (*store.Incident, error) {
	f.change(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	in, ok := f.incidents[r.ID]
	if !ok {
		return nil, fmt.Errorf("incident %d: %w", r.ID, api.ErrNotFound)
	}
	if !in.State.Active() {
		return nil, fmt.Errorf("%w: incident %d is %s", api.ErrConflict, r.ID, in.State)
	}
	switch r.Change {
	case api.IncidentConfirm:
		in.State = store.IncidentConfirmed
	case api.IncidentDismiss:
		in.State = store.IncidentDismissed
	case api.IncidentResolve:
		in.State = store.IncidentResolved
	}
	c := *in
	return &c, nil
}

func hours(n int) []api.VolumePoint {
	ps := make([]api.VolumePoint, n)
	for i := range ps {
		ps[i] = api.VolumePoint{Time: t0.Add(time.Duration(i-n+1) * time.Hour), Messages: int64(i % 7), Recipients: int64(3 * (i % 7)), Held: int64(i % 3)}
	}
	return ps
}

func (f *fakeMethods) Dashboard(context.Context) (*api.Dashboard, error) {
	f.mu.Lock()
	down := f.storeDown
	f.mu.Unlock()
	if down {
		return nil, errors.New(driverError)
	}
	return &api.Dashboard{Held: 2, ActiveIncidents: 1, Restricted: 0, Locked: 1, Volume: hours(24)}, nil
}

func (f *fakeMethods) AccountTimeline(_ context.Context, name string) (*api.Timeline, error) {
	// The last 6 hours by five minutes: a ten-minute burst of 40 messages
	// (two columns) an hour and a half ago, all held.
	recent := make([]api.VolumePoint, 72)
	for i := range recent {
		recent[i].Time = t0.Add(time.Duration(i-71) * 5 * time.Minute)
		if at := recent[i].Time; !at.Before(t0.Add(-95*time.Minute)) && at.Before(t0.Add(-85*time.Minute)) {
			recent[i].Messages, recent[i].Recipients, recent[i].Held = 20, 1200, 20
		}
	}
	return &api.Timeline{Points: hours(24), Recent: recent, Events: []api.TimelineEvent{
		{Time: t0.Add(-90 * time.Minute), Kind: "hold", Text: "hold 1: bulk-from-scripted-client"},
		{Time: t0.Add(-30 * time.Minute), Kind: "state", Text: "locked"},
	}}, nil
}

func (f *fakeMethods) Config(context.Context) (string, error) {
	return "http:\n  listen: 127.0.0.1:8025\nresponse:\n  zimbra:\n    admin_password_file: /etc/mailbrake/zimbra.pw\n", nil
}

// fakeAuth is an in-memory Authenticator.
type fakeAuth struct {
	mu       sync.Mutex
	users    map[string]fakeUser
	sessions map[string]auth.Principal
	tokens   map[string]auth.Principal
	// storeDown: a session cannot be read (the records store does not
	// answer, and this node has not checked it lately).
	storeDown bool
}

type fakeUser struct {
	password string
	role     auth.Role
}

func newFakeAuth() *fakeAuth {
	return &fakeAuth{
		users: map[string]fakeUser{
			"admin":    {passwordSentinel, auth.RoleAdmin},
			"helpdesk": {"helpdesk-pw", auth.RoleHelpdesk},
			"viewer":   {"viewer-pw", auth.RoleViewer},
		},
		sessions: map[string]auth.Principal{},
		tokens:   map[string]auth.Principal{},
	}
}

func randomHex() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// session starts a session for name without a password.
func (a *fakeAuth) session(name string) auth.Principal {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := auth.Principal{Name: name, Role: a.users[name].role, Via: "session", SessionID: "sid-" + randomHex(), CSRF: "csrf-" + randomHex()}
	a.sessions[p.SessionID] = p
	return p
}

func (a *fakeAuth) Login(_ context.Context, name, password, remoteIP string) (*auth.Principal, error) {
	if name == "limited" {
		return nil, auth.ErrRateLimited
	}
	a.mu.Lock()
	u, ok := a.users[name]
	a.mu.Unlock()
	if !ok || u.password != password {
		return nil, auth.ErrBadCredentials
	}
	p := a.session(name)
	return &p, nil
}

func (a *fakeAuth) Logout(_ context.Context, sessionID string) error {
	a.mu.Lock()
	delete(a.sessions, sessionID)
	a.mu.Unlock()
	return nil
}

func (a *fakeAuth) Authenticate(r *http.Request) (*auth.Principal, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if h := r.Header.Get("Authorization"); h != "" {
		p, ok := a.tokens[strings.TrimPrefix(h, "Bearer ")]
		if !ok {
			return nil, auth.ErrUnauthenticated
		}
		return &p, nil
	}
	c, err := r.Cookie(auth.SessionCookie)
	if err != nil {
		return nil, auth.ErrUnauthenticated
	}
	if a.storeDown {
		return nil, fmt.Errorf("checking the session: %w", errors.New(driverError))
	}
	p, ok := a.sessions[c.Value]
	if !ok {
		return nil, auth.ErrUnauthenticated
	}
	return &p, nil
}

func (f *fakeMethods) ListTrust(context.Context) ([]store.TrustEntry, error) {
	return []store.TrustEntry{{ID: 5, Account: "carol@example.org", ClientFamily: "zimbra-html", Until: t0.Add(7 * 24 * time.Hour), Created: t0, By: "web:admin", Note: "newsletter", HoldID: 1}}, nil
}

func (f *fakeMethods) DeleteTrust(ctx context.Context, id int64) error {
	if id != 5 {
		return api.ErrNotFound
	}
	f.change(ctx)
	return nil
}

func (f *fakeMethods) ListUsers(context.Context) ([]store.User, error) {
	return []store.User{{Name: "admin", Role: "admin", Created: t0, Updated: t0}}, nil
}

func (f *fakeMethods) PutUser(ctx context.Context, r api.PutUserRequest) (*store.User, error) {
	f.change(ctx)
	return &store.User{Name: r.Name, Role: r.Role, Created: t0, Updated: t0}, nil
}

func (f *fakeMethods) RemoveUser(ctx context.Context, name string) error {
	f.change(ctx)
	return nil
}

func (f *fakeMethods) ListTokens(context.Context) ([]store.Token, error) {
	return []store.Token{{ID: "abc", Name: "ci", Role: "viewer", Created: t0}}, nil
}

func (f *fakeMethods) CreateToken(ctx context.Context, r api.CreateTokenRequest) (*api.NewToken, error) {
	f.change(ctx)
	return &api.NewToken{Token: store.Token{ID: "new1", Name: r.Name, Role: r.Role, Created: t0}, Secret: "mbk_new1_" + tokenSentinel}, nil
}

func (f *fakeMethods) RevokeToken(ctx context.Context, id string) error {
	f.change(ctx)
	return nil
}
