package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/mailbrake/mailbrake/internal/pwhash"
	"github.com/mailbrake/mailbrake/internal/store"
)

// Argon2id parameters for new password hashes: OWASP's first
// recommendation (19 MiB, 2 passes, 1 lane), about 30 ms here. Logins are
// rare and rate-limited, so the memory is spent a few times a minute.
const (
	argonMemoryKiB = 19 * 1024
	argonTime      = 2
	argonLanes     = 1
)

// Session lifetimes: an idle browser session ends after IdleTimeout, any
// session after MaxAge (a review shift).
const (
	DefaultIdleTimeout = time.Hour
	DefaultMaxAge      = 12 * time.Hour
)

// Login rate limit: after MaxFailures failed logins within FailureWindow
// from one address, or for one user name, logins are refused until the
// window has passed.
const (
	MaxFailures   = 5
	FailureWindow = 15 * time.Minute
)

// MaxConcurrentHashes bounds the password checks running at once: one
// argon2id check takes 19 MiB, so a login flood cannot take the memory;
// a login that finds them all busy for a second is refused (429).
const MaxConcurrentHashes = 4

// Options configures a Service.
type Options struct {
	IdleTimeout, MaxAge time.Duration
	Log                 *slog.Logger
	Now                 func() time.Time
}

// Service authenticates users, sessions and API tokens.
type Service struct {
	st  store.Users
	o   Options
	mu  sync.Mutex
	ses map[string]*session // by SHA-256 of the session ID
	// failures by "ip:" + address and "user:" + name
	failures map[string][]time.Time
	// dummy is verified when a user does not exist, so a wrong name costs
	// as much as a wrong password.
	dummy *pwhash.Hash
	// hashing holds a token per password check running.
	hashing chan struct{}
}

type session struct {
	p       Principal
	created time.Time
	seen    time.Time
}

// New returns a Service over st.
func New(st store.Users, o Options) *Service {
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Service{st: st, o: o, ses: map[string]*session{}, failures: map[string][]time.Time{}, hashing: make(chan struct{}, MaxConcurrentHashes)}
	h, _ := HashPassword(randomString(16))
	s.dummy, _ = pwhash.Parse(h)
	return s
}

// HashPassword returns an argon2id PHC string for password.
func HashPassword(password string) (string, error) {
	if err := CheckPassword(password); err != nil {
		return "", err
	}
	salt := make([]byte, 16)
	rand.Read(salt)
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemoryKiB, argonLanes, 32)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemoryKiB, argonTime, argonLanes, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// CheckPassword enforces the password policy for users: at least 12
// characters (NIST SP 800-63B lets length, not composition rules, carry
// the strength), at most 256 bytes.
func CheckPassword(password string) error {
	if utf8.RuneCountInString(password) < 12 {
		return errors.New("a password needs at least 12 characters")
	}
	if len(password) > 256 {
		return errors.New("a password may have at most 256 bytes")
	}
	return nil
}

// ValidName reports whether a user name is acceptable: 1 to 64 letters,
// digits, '.', '_', '-' or '@'.
func ValidName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-@", r)) {
			return false
		}
	}
	return true
}

func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func sessionKey(id string) string {
	h := sha256.Sum256([]byte(id))
	return string(h[:])
}

// reserve counts a login attempt against keys before its password is
// checked, in one step with the check of the limit: concurrent attempts
// count as failures until they succeed, so a flood tests MaxFailures
// passwords, not as many as it sends. ok is false when the limit is
// reached.
func (s *Service) reserve(now time.Time, keys ...string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		fs := s.failures[k]
		n := 0
		for _, t := range fs {
			if now.Sub(t) < FailureWindow {
				fs[n] = t
				n++
			}
		}
		s.failures[k] = fs[:n]
		if n >= MaxFailures {
			return false
		}
	}
	for _, k := range keys {
		s.failures[k] = append(s.failures[k], now)
	}
	if len(s.failures) > 100000 {
		// A flood of distinct addresses: keep memory bounded.
		for k, fs := range s.failures {
			if len(fs) == 0 || now.Sub(fs[len(fs)-1]) >= FailureWindow {
				delete(s.failures, k)
			}
		}
	}
	return true
}

// succeeded takes back the attempt reserve counted at now.
func (s *Service) succeeded(now time.Time, keys ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		fs := s.failures[k]
		for i := len(fs) - 1; i >= 0; i-- {
			if fs[i].Equal(now) {
				s.failures[k] = append(fs[:i], fs[i+1:]...)
				break
			}
		}
	}
}

// Login checks a user's password and starts a session. The Principal
// returned carries the session ID (for the cookie) and its CSRF token.
func (s *Service) Login(ctx context.Context, name, password, remoteIP string) (*Principal, error) {
	now := s.o.Now()
	keys := []string{"ip:" + remoteIP, "user:" + strings.ToLower(name)}
	if !s.reserve(now, keys...) {
		s.o.Log.Warn("login refused: rate limited", "user", name, "remote", remoteIP)
		return nil, ErrRateLimited
	}
	select {
	case s.hashing <- struct{}{}:
		defer func() { <-s.hashing }()
	case <-time.After(time.Second):
		s.succeeded(now, keys...) // not checked: not a failure
		s.o.Log.Warn("login refused: too many at once", "user", name, "remote", remoteIP)
		return nil, ErrBusy
	case <-ctx.Done():
		s.succeeded(now, keys...)
		return nil, ctx.Err()
	}
	u, err := s.st.GetUser(ctx, name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.succeeded(now, keys...)
		return nil, err
	}
	ok := false
	if u != nil {
		if h, perr := pwhash.Parse(u.Hash); perr == nil {
			ok = h.Verify([]byte(password))
		}
	} else {
		s.dummy.Verify([]byte(password))
	}
	if !ok {
		s.o.Log.Warn("login failed", "user", name, "remote", remoteIP)
		return nil, ErrBadCredentials
	}
	s.succeeded(now, keys...)
	id := randomString(32)
	p := Principal{Name: u.Name, Role: Role(u.Role), Via: "session", SessionID: id, CSRF: randomString(32)}
	s.mu.Lock()
	s.ses[sessionKey(id)] = &session{p: p, created: now, seen: now}
	s.mu.Unlock()
	s.o.Log.Info("login", "user", u.Name, "role", u.Role, "remote", remoteIP)
	return &p, nil
}

// Logout ends a session.
func (s *Service) Logout(_ context.Context, sessionID string) error {
	s.mu.Lock()
	delete(s.ses, sessionKey(sessionID))
	s.mu.Unlock()
	return nil
}

// EndSessions ends every session of a user (after a password change, a
// role change or removal).
func (s *Service) EndSessions(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.ses {
		if v.p.Name == name {
			delete(s.ses, k)
		}
	}
}

// Session returns the principal of a live session.
func (s *Service) Session(sessionID string) (*Principal, error) {
	now := s.o.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	k := sessionKey(sessionID)
	se := s.ses[k]
	if se == nil {
		return nil, ErrUnauthenticated
	}
	if now.Sub(se.seen) > s.o.IdleTimeout || now.Sub(se.created) > s.o.MaxAge {
		delete(s.ses, k)
		return nil, ErrUnauthenticated
	}
	se.seen = now
	p := se.p
	return &p, nil
}

// TokenPrefix starts every API token: "mbk_" + ID + "_" + secret.
const TokenPrefix = "mbk_"

// CreateToken makes an API token for role; the returned secret is shown
// once and only its SHA-256 is stored.
func (s *Service) CreateToken(ctx context.Context, name string, role Role, ttl time.Duration, by string) (store.Token, string, error) {
	if !role.Valid() {
		return store.Token{}, "", fmt.Errorf("unknown role %q", role)
	}
	if strings.TrimSpace(name) == "" || len(name) > 100 {
		return store.Token{}, "", errors.New("a token needs a name (at most 100 characters)")
	}
	now := s.o.Now().UTC()
	id := strings.NewReplacer("-", "x", "_", "y").Replace(randomString(9))
	secret := randomString(32)
	h := sha256.Sum256([]byte(secret))
	t := store.Token{ID: id, Name: name, Role: string(role), Hash: h[:], Created: now, By: by}
	if ttl > 0 {
		t.Expires = now.Add(ttl)
	}
	if err := s.st.PutToken(ctx, t); err != nil {
		return store.Token{}, "", err
	}
	t.Hash = nil
	return t, TokenPrefix + id + "_" + secret, nil
}

// Token returns the principal of an API token.
func (s *Service) Token(ctx context.Context, bearer string) (*Principal, error) {
	rest, ok := strings.CutPrefix(bearer, TokenPrefix)
	if !ok {
		return nil, ErrUnauthenticated
	}
	id, secret, ok := strings.Cut(rest, "_")
	if !ok || id == "" || secret == "" || len(bearer) > 200 {
		return nil, ErrUnauthenticated
	}
	t, err := s.st.GetToken(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrUnauthenticated
	}
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(h[:], t.Hash) != 1 {
		return nil, ErrUnauthenticated
	}
	now := s.o.Now()
	if !t.Expires.IsZero() && now.After(t.Expires) {
		return nil, ErrUnauthenticated
	}
	if now.Sub(t.LastUsed) > time.Minute {
		_ = s.st.TouchToken(ctx, id, now.UTC())
	}
	return &Principal{Name: "token:" + t.Name, Role: Role(t.Role), Via: "token"}, nil
}

// Authenticate returns the principal of a request: an "Authorization:
// Bearer" API token, or the session cookie.
func (s *Service) Authenticate(r *http.Request) (*Principal, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return nil, ErrUnauthenticated
		}
		return s.Token(r.Context(), strings.TrimSpace(tok))
	}
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return nil, ErrUnauthenticated
	}
	return s.Session(c.Value)
}

// CheckCSRF verifies the CSRF token of a state-changing request made with
// a session (API tokens are not sent by browsers on their own, so they
// need none).
func CheckCSRF(r *http.Request, p *Principal) error {
	if p == nil || p.Via != "session" {
		return nil
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	got := r.Header.Get(CSRFHeader)
	if got == "" {
		got = r.PostFormValue(CSRFField)
	}
	if got == "" || p.CSRF == "" || subtle.ConstantTimeCompare([]byte(got), []byte(p.CSRF)) != 1 {
		return ErrCSRF
	}
	return nil
}
