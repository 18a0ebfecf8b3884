package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/store"
	"github.com/mailbrake/mailbrake/internal/store/sqlite"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newService(t *testing.T) (*Service, *sqlite.Store, *clock) {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := &clock{t: time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)}
	h, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutUser(t.Context(), store.User{Name: "alice", Role: "admin", Hash: h, Created: clk.now(), Updated: clk.now()}); err != nil {
		t.Fatal(err)
	}
	return New(st, Options{Now: clk.now}), st, clk
}

func TestLoginSessionLogout(t *testing.T) {
	s, _, clk := newService(t)
	ctx := context.Background()
	if _, err := s.Login(ctx, "alice", "wrong password!!", "192.0.2.1"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := s.Login(ctx, "nobody", "correct horse battery", "192.0.2.1"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("unknown user: %v", err)
	}
	p, err := s.Login(ctx, "alice", "correct horse battery", "192.0.2.1")
	if err != nil || p.Role != RoleAdmin || p.Via != "session" || len(p.SessionID) < 40 || len(p.CSRF) < 40 {
		t.Fatalf("login: %v %+v", err, p)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.AddCookie(&http.Cookie{Name: SessionCookie, Value: p.SessionID})
	got, err := s.Authenticate(r)
	if err != nil || got.Name != "alice" || got.CSRF != p.CSRF {
		t.Fatalf("authenticate: %v %+v", err, got)
	}
	clk.add(DefaultIdleTimeout + time.Second)
	if _, err := s.Authenticate(r); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("idle session still valid: %v", err)
	}
	p, _ = s.Login(ctx, "alice", "correct horse battery", "192.0.2.1")
	if err := s.Logout(ctx, p.SessionID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Session(ctx, p.SessionID); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("session after logout: %v", err)
	}
	// A session ends after MaxAge however active it is.
	p, _ = s.Login(ctx, "alice", "correct horse battery", "192.0.2.1")
	for i := 0; i < 13; i++ {
		clk.add(59 * time.Minute)
		_, err = s.Session(ctx, p.SessionID)
	}
	if !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("session older than MaxAge: %v", err)
	}
	p, _ = s.Login(ctx, "alice", "correct horse battery", "192.0.2.1")
	if err := s.EndSessions(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Session(ctx, p.SessionID); !errors.Is(err, ErrUnauthenticated) {
		t.Fatal("EndSessions left a session")
	}
}

func TestLoginRateLimit(t *testing.T) {
	s, _, clk := newService(t)
	ctx := context.Background()
	for i := 0; i < MaxFailures; i++ {
		s.Login(ctx, "alice", "wrong password!!", "192.0.2.7")
	}
	if _, err := s.Login(ctx, "alice", "correct horse battery", "192.0.2.7"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("after %d failures: %v", MaxFailures, err)
	}
	// The user name is limited from other addresses too.
	if _, err := s.Login(ctx, "alice", "correct horse battery", "198.51.100.1"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("same user, other address: %v", err)
	}
	clk.add(FailureWindow + time.Second)
	if _, err := s.Login(ctx, "alice", "correct horse battery", "192.0.2.7"); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

func TestTokens(t *testing.T) {
	s, st, clk := newService(t)
	ctx := context.Background()
	tok, secret, err := s.CreateToken(ctx, "monitoring", RoleViewer, time.Hour, "cli:root")
	if err != nil || !strings.HasPrefix(secret, TokenPrefix+tok.ID+"_") || tok.Hash != nil {
		t.Fatalf("create: %v %+v", err, tok)
	}
	r := httptest.NewRequest("GET", "/api/v1/holds", nil)
	r.Header.Set("Authorization", "Bearer "+secret)
	p, err := s.Authenticate(r)
	if err != nil || p.Role != RoleViewer || p.Via != "token" || p.Name != "token:monitoring" {
		t.Fatalf("token auth: %v %+v", err, p)
	}
	for _, bad := range []string{secret + "x", TokenPrefix + tok.ID + "_", "mbk_nope_x", "Basic abc", strings.Repeat("a", 300)} {
		r.Header.Set("Authorization", "Bearer "+bad)
		if _, err := s.Authenticate(r); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("bad token %q…: %v", bad[:min(len(bad), 12)], err)
		}
	}
	if saved, _ := st.GetToken(ctx, tok.ID); strings.Contains(string(saved.Hash), secret) {
		t.Fatal("secret stored")
	}
	clk.add(2 * time.Hour)
	r.Header.Set("Authorization", "Bearer "+secret)
	if _, err := s.Authenticate(r); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("expired token: %v", err)
	}
	if _, _, err := s.CreateToken(ctx, "x", "root", 0, ""); err == nil {
		t.Fatal("unknown role accepted")
	}
}

func TestCSRF(t *testing.T) {
	p := &Principal{Name: "alice", Role: RoleAdmin, Via: "session", CSRF: "tok-123"}
	post := func(form url.Values, header string) *http.Request {
		r := httptest.NewRequest("POST", "/x", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if header != "" {
			r.Header.Set(CSRFHeader, header)
		}
		return r
	}
	if err := CheckCSRF(post(url.Values{CSRFField: {"tok-123"}}, ""), p); err != nil {
		t.Fatal(err)
	}
	if err := CheckCSRF(post(nil, "tok-123"), p); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*http.Request{post(nil, ""), post(url.Values{CSRFField: {"tok-12"}}, ""), post(nil, "other")} {
		if err := CheckCSRF(r, p); !errors.Is(err, ErrCSRF) {
			t.Fatalf("bad CSRF accepted: %v", err)
		}
	}
	if err := CheckCSRF(httptest.NewRequest("GET", "/x", nil), p); err != nil {
		t.Fatal("GET needs no CSRF")
	}
	if err := CheckCSRF(post(nil, ""), &Principal{Via: "token", Role: RoleAdmin}); err != nil {
		t.Fatal("token requests need no CSRF")
	}
}

func TestRoles(t *testing.T) {
	if !RoleAdmin.Can(PermUsersAdmin) || RoleHelpdesk.Can(PermHoldsContent) || !RoleHelpdesk.Can(PermAccountsUnlock) ||
		RoleViewer.Can(PermHoldsAct) || !RoleViewer.Can(PermHoldsContent) || Role("root").Can(PermHoldsRead) {
		t.Fatal("role matrix")
	}
	if err := CheckPassword("short"); err == nil {
		t.Fatal("short password accepted")
	}
	if ValidName("bad name") || !ValidName("help.desk@example.edu") {
		t.Fatal("ValidName")
	}
}

// TestLoginFlood: 399 concurrent logins with wrong passwords for one user
// test at most MaxFailures of them (an attempt counts before its password
// is checked), no more than MaxConcurrentHashes checks run at once, and
// the right password tried after the flood is refused too: the user name
// is locked out for the window. (The right password used to be the 400th
// goroutine of the flood, which was accepted whenever the scheduler ran
// it among the first five.)
func TestLoginFlood(t *testing.T) {
	s, _, _ := newService(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	count := map[error]int{}
	accepted := 0
	for i := range 399 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if len(s.hashing) > MaxConcurrentHashes {
				t.Error("more checks at once than the bound")
			}
			_, err := s.Login(ctx, "alice", fmt.Sprintf("wrong password %03d", i), fmt.Sprintf("198.51.100.%d", i%250))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				accepted++
			case errors.Is(err, ErrBadCredentials):
				count[ErrBadCredentials]++
			case errors.Is(err, ErrRateLimited):
				count[ErrRateLimited]++
			default:
				t.Errorf("unexpected %v", err)
			}
		}()
	}
	wg.Wait()
	if accepted != 0 {
		t.Fatalf("%d wrong passwords accepted", accepted)
	}
	if tested := count[ErrBadCredentials]; tested > MaxFailures {
		t.Errorf("%d passwords tested, limit %d", tested, MaxFailures)
	}
	if count[ErrRateLimited] < 399-MaxFailures {
		t.Errorf("%d refused, want at least %d", count[ErrRateLimited], 399-MaxFailures)
	}
	if _, err := s.Login(ctx, "alice", "correct horse battery", "198.51.100.77"); !errors.Is(err, ErrRateLimited) {
		t.Errorf("the right password after the flood: %v, want refused as rate-limited", err)
	}
	t.Logf("tested %d, refused %d", count[ErrBadCredentials], count[ErrRateLimited])
}
