package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/store"
	"github.com/mailbrake/mailbrake/internal/store/sqlite"
)

// flaky is a records store that stops answering on demand (PostgreSQL
// down) and counts the writes of Seen.
type flaky struct {
	*sqlite.Store
	down    atomic.Bool
	touches atomic.Int64
}

var errDown = errors.New("dial tcp 192.0.2.5:5432: connect: connection refused")

func (f *flaky) GetUser(ctx context.Context, name string) (*store.User, error) {
	if f.down.Load() {
		return nil, errDown
	}
	return f.Store.GetUser(ctx, name)
}

func (f *flaky) PutSession(ctx context.Context, s store.Session) error {
	if f.down.Load() {
		return errDown
	}
	return f.Store.PutSession(ctx, s)
}

func (f *flaky) GetSession(ctx context.Context, hash []byte) (*store.Session, error) {
	if f.down.Load() {
		return nil, errDown
	}
	return f.Store.GetSession(ctx, hash)
}

func (f *flaky) TouchSession(ctx context.Context, hash []byte, at time.Time) error {
	if f.down.Load() {
		return errDown
	}
	f.touches.Add(1)
	return f.Store.TouchSession(ctx, hash, at)
}

func (f *flaky) DeleteSession(ctx context.Context, hash []byte) error {
	if f.down.Load() {
		return errDown
	}
	return f.Store.DeleteSession(ctx, hash)
}

func (f *flaky) DeleteUserSessions(ctx context.Context, user string) (int64, error) {
	if f.down.Load() {
		return 0, errDown
	}
	return f.Store.DeleteUserSessions(ctx, user)
}

// nodes returns two Services over one store, as two cluster nodes over
// one PostgreSQL, with alice (admin) in it.
func nodes(t *testing.T) (a, b *Service, f *flaky, clk *clock) {
	t.Helper()
	a, st, clk := newService(t)
	f = &flaky{Store: st}
	a = New(f, Options{Now: clk.now})
	b = New(f, Options{Now: clk.now})
	return a, b, f, clk
}

func login(t *testing.T, s *Service, name string) *Principal {
	t.Helper()
	p, err := s.Login(t.Context(), name, "correct horse battery", "192.0.2.1")
	if err != nil {
		t.Fatalf("login as %s: %v", name, err)
	}
	return p
}

func refused(t *testing.T, s *Service, p *Principal, why string) {
	t.Helper()
	if got, err := s.Session(t.Context(), p.SessionID); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("%s: session still valid: %+v, %v", why, got, err)
	}
}

// TestSessionsSharedByNodes: a session begun on one node is valid on
// the other with the same CSRF token, and a session signed out or ended
// on one node is refused on the other, which had checked it itself.
func TestSessionsSharedByNodes(t *testing.T) {
	a, b, f, _ := nodes(t)
	ctx := t.Context()
	p := login(t, a, "alice")
	if got, err := a.Session(ctx, p.SessionID); err != nil || got.Name != "alice" || got.Role != RoleAdmin || got.CSRF != p.CSRF {
		t.Fatalf("node a: %+v, %v", got, err)
	}
	got, err := b.Session(ctx, p.SessionID)
	if err != nil || got.Name != "alice" || got.Role != RoleAdmin || got.Via != "session" || got.SessionID != p.SessionID || got.CSRF != p.CSRF {
		t.Fatalf("node b: %+v, %v", got, err)
	}
	if err := b.Logout(ctx, p.SessionID); err != nil {
		t.Fatal(err)
	}
	refused(t, a, p, "signed out on node b")

	p = login(t, a, "alice")
	if p2 := login(t, a, "alice"); p2.CSRF == p.CSRF {
		t.Fatal("two sessions share a CSRF token")
	}
	if _, err := b.Session(ctx, p.SessionID); err != nil {
		t.Fatal(err)
	}
	if err := b.EndSessions(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	refused(t, a, p, "alice's sessions ended on node b")
	refused(t, b, p, "alice's sessions ended on node b")

	// Removed on node b without ending the sessions (a node of the
	// previous version, which ends only its own): refused on node a at
	// the next request, and gone from the store.
	p = login(t, a, "alice")
	if err := f.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	refused(t, a, p, "alice removed")
	if _, err := f.Store.GetSession(ctx, sessionKey(p.SessionID)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the removed user's session is still stored: %v", err)
	}
}

// TestSessionUserChanged: bob, an admin signed in on node a, demoted or
// given a new password on node b is refused on node a at his next
// request, even when node b did not end his sessions; signed in again
// he has his new role.
func TestSessionUserChanged(t *testing.T) {
	a, b, f, clk := nodes(t)
	ctx := t.Context()
	h, _ := HashPassword("correct horse battery")
	put := func(role, hash string) {
		t.Helper()
		clk.add(time.Second)
		u, err := f.GetUser(ctx, "bob")
		if errors.Is(err, store.ErrNotFound) {
			u, err = &store.User{Name: "bob", Created: clk.now()}, nil
		}
		if err != nil {
			t.Fatal(err)
		}
		u.Role, u.Hash, u.Updated = role, hash, clk.now()
		if err := f.PutUser(ctx, *u); err != nil {
			t.Fatal(err)
		}
	}
	put("admin", h)
	p := login(t, a, "bob")
	if got, err := b.Session(ctx, p.SessionID); err != nil || got.Role != RoleAdmin {
		t.Fatalf("before: %+v, %v", got, err)
	}
	put("viewer", h) // demoted on node b; no EndSessions
	refused(t, a, p, "bob demoted")
	p = login(t, a, "bob")
	if got, err := b.Session(ctx, p.SessionID); err != nil || got.Role != RoleViewer || !got.Can(PermHoldsRead) || got.Can(PermHoldsAct) {
		t.Fatalf("signed in again after the demotion: %+v, %v", got, err)
	}

	// A new password, the same role.
	put("viewer", h)
	refused(t, b, p, "bob's password reset")

	// Removed and added again with his old role: not his old session.
	put("admin", h)
	p = login(t, a, "bob")
	if err := f.DeleteUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	put("admin", h)
	refused(t, b, p, "bob removed and added again")
}

// TestSessionIdleAcrossNodes: the idle time counts from the last request
// on any node; Seen is written at most once a minute per session.
func TestSessionIdleAcrossNodes(t *testing.T) {
	a, b, f, clk := nodes(t)
	ctx := t.Context()
	p := login(t, a, "alice")
	use := func(s *Service, after time.Duration) error {
		clk.add(after)
		_, err := s.Session(ctx, p.SessionID)
		return err
	}
	for i := range 60 { // a minute of requests on both nodes
		s := a
		if i%2 == 1 {
			s = b
		}
		if err := use(s, 900*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.touches.Load(); n != 0 {
		t.Fatalf("%d writes of Seen within the first minute", n)
	}
	if err := use(b, 10*time.Second); err != nil { // 64 s after the login
		t.Fatal(err)
	}
	if err := use(a, time.Second); err != nil {
		t.Fatal(err)
	}
	if n := f.touches.Load(); n != 1 {
		t.Fatalf("%d writes of Seen a minute after the login, want 1", n)
	}
	// Used on node b only: node a finds it active, not idle.
	if err := use(b, 50*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := use(a, 50*time.Minute); err != nil {
		t.Fatalf("used on node b 50 minutes ago, node a says: %v", err)
	}
	if err := use(a, DefaultIdleTimeout+time.Second); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("idle for longer than the timeout: %v", err)
	}
	refused(t, b, p, "idle, and ended on node a")
}

// TestSessionWhileStoreDown: while the store does not answer, a session
// a node checked within OutageGrace goes on there; any other gets the
// store's error (not "unauthenticated": the cookie is kept); a sign-out
// meanwhile is refused on that node at once and reaches the store when
// it answers.
func TestSessionWhileStoreDown(t *testing.T) {
	a, b, f, clk := nodes(t)
	ctx := t.Context()
	p := login(t, a, "alice")
	q := login(t, a, "alice")
	if _, err := a.Session(ctx, q.SessionID); err != nil {
		t.Fatal(err)
	}
	f.down.Store(true)
	clk.add(time.Minute)
	if got, err := a.Session(ctx, p.SessionID); err != nil || got.Name != "alice" || got.Role != RoleAdmin || got.CSRF != p.CSRF {
		t.Fatalf("a session checked here, store down: %+v, %v", got, err)
	}
	if _, err := b.Session(ctx, p.SessionID); err == nil || errors.Is(err, ErrUnauthenticated) || !errors.Is(err, errDown) {
		t.Fatalf("a session never checked on node b, store down: %v", err)
	}
	if _, err := a.Session(ctx, "not-a-session"); err == nil || errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("an unknown session, store down: %v", err)
	}
	if _, err := a.Login(ctx, "alice", "correct horse battery", "192.0.2.1"); !errors.Is(err, errDown) {
		t.Fatalf("login, store down: %v", err)
	}
	// Signed out meanwhile: refused here at once.
	if err := a.Logout(ctx, q.SessionID); err == nil {
		t.Fatal("a sign-out the store did not take reported done")
	}
	refused(t, a, q, "signed out while the store was down")
	clk.add(OutageGrace)
	if _, err := a.Session(ctx, p.SessionID); err == nil || errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("beyond the grace: %v", err)
	}

	f.down.Store(false)
	if _, err := a.Session(ctx, p.SessionID); err != nil {
		t.Fatalf("store back: %v", err)
	}
	refused(t, b, q, "signed out on node a while the store was down")
}

// TestSessionIDNotStored: the store keeps the SHA-256 of a session ID,
// never the ID or its CSRF token.
func TestSessionIDNotStored(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	st, err := sqlite.Open(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h, _ := HashPassword("correct horse battery")
	now := time.Now()
	if err := st.PutUser(t.Context(), store.User{Name: "alice", Role: "admin", Hash: h, Created: now, Updated: now}); err != nil {
		t.Fatal(err)
	}
	s := New(st, Options{})
	p := login(t, s, "alice")
	sum := sha256.Sum256([]byte(p.SessionID))
	if se, err := st.GetSession(t.Context(), sum[:]); err != nil || se.User != "alice" || se.Role != "admin" {
		t.Fatalf("stored session: %+v, %v", se, err)
	}
	files, _ := filepath.Glob(path + "*")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(p.SessionID)) || bytes.Contains(b, []byte(p.CSRF)) {
			t.Errorf("%s holds the session ID or its CSRF token", filepath.Base(file))
		}
	}
}

// TestPruneSessions: sessions past their idle time or maximal age are
// deleted from the store.
func TestPruneSessions(t *testing.T) {
	a, _, f, clk := nodes(t)
	ctx := t.Context()
	old := login(t, a, "alice")
	clk.add(DefaultIdleTimeout - time.Minute)
	live := login(t, a, "alice")
	clk.add(10 * time.Minute)
	if n, err := a.PruneSessions(ctx); err != nil || n != 1 {
		t.Fatalf("PruneSessions = %d, %v; want 1", n, err)
	}
	if _, err := f.Store.GetSession(ctx, sessionKey(old.SessionID)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("idle session kept: %v", err)
	}
	if _, err := a.Session(ctx, live.SessionID); err != nil {
		t.Fatalf("live session: %v", err)
	}
	// Active all along, but older than MaxAge by its last request.
	for range 12 {
		clk.add(59 * time.Minute)
		if _, err := a.Session(ctx, live.SessionID); err != nil {
			t.Fatal(err)
		}
	}
	clk.add(13 * time.Minute) // 721 minutes since it began, 13 since its last request
	if n, err := a.PruneSessions(ctx); err != nil || n != 1 {
		t.Fatalf("PruneSessions = %d, %v; want 1", n, err)
	}
	if _, err := f.Store.GetSession(ctx, sessionKey(live.SessionID)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("session older than MaxAge kept: %v", err)
	}
}

// hanging is a records store whose token reads wait until their context
// ends: PostgreSQL cut off by the network, no reset.
type hanging struct{ *sqlite.Store }

func (hanging) GetToken(ctx context.Context, id string) (*store.Token, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestTokenCheckBounded: an API token check against a store that does not
// answer gives up after storeTimeout with words saying so (the API
// answers 503), instead of holding the request until TCP gives up.
func TestTokenCheckBounded(t *testing.T) {
	s, st, _ := newService(t)
	_, bearer, err := s.CreateToken(t.Context(), "ci", RoleViewer, time.Hour, "cli:root")
	if err != nil {
		t.Fatal(err)
	}
	h := New(hanging{st}, Options{})
	done := make(chan error, 1)
	go func() {
		_, err := h.Token(t.Context(), bearer)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "did not answer") {
			t.Fatalf("token check against a silent store: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the token check waited for the silent store")
	}
}
