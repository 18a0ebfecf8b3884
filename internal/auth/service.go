package auth

import (
	"context"
	"crypto/hmac"
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

// TouchEvery: a session's last request is written to the store at most
// this often. The store's Seen may be that late: a node measures a
// session's idle time from the later of it and the session's last request
// on this node.
const TouchEvery = time.Minute

// OutageGrace: while the records store does not answer, a session this
// node checked in the store within OutageGrace goes on here, as it was
// then (its user, its role); any other is refused with the store's error.
// Nobody can change a user while the store does not answer, but a change
// made on another node just before it stopped answering is not seen here
// until it answers again: the grace bounds that.
const OutageGrace = 5 * time.Minute

// storeTimeout bounds the store's reads of one session check: a store that
// does not answer within it is treated as down (OutageGrace).
const storeTimeout = 2 * time.Second

// maxKnown bounds the sessions a node remembers (OutageGrace).
const maxKnown = 100000

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

// Store is what a Service keeps in the records store: users, API tokens
// and sessions. Every node of a cluster shares it.
type Store interface {
	store.Users
	store.Sessions
}

// Service authenticates users, sessions and API tokens. Sessions live in
// the store (by the SHA-256 of their ID), so every node knows each one and
// a session ended on one node is ended on all of them; every request reads
// its session and its user there.
type Service struct {
	st Store
	o  Options
	mu sync.Mutex
	// known are the sessions this node checked in the store, by the
	// SHA-256 of their ID: what goes on while the store does not answer
	// (OutageGrace), and the last request of each here.
	known map[string]*known
	// ended are sessions signed out here while the store did not answer,
	// by the SHA-256 of their ID: refused here, and deleted from the store
	// once it answers.
	ended map[string]time.Time
	// endedTried is when deleting them was last tried on a check.
	endedTried time.Time
	// outage: the last check could not read the store (said once).
	outage bool
	// failures by "ip:" + address and "user:" + name
	failures map[string][]time.Time
	// dummy is verified when a user does not exist, so a wrong name costs
	// as much as a wrong password.
	dummy *pwhash.Hash
	// hashing holds a token per password check running.
	hashing chan struct{}
}

// known is a session this node checked in the store.
type known struct {
	name    string
	role    Role
	created time.Time
	seen    time.Time // its last request on this node
	checked time.Time // its last check in the store
	touched time.Time // the last time its Seen was written from here
}

// New returns a Service over st.
func New(st Store, o Options) *Service {
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
	s := &Service{st: st, o: o, known: map[string]*known{}, ended: map[string]time.Time{}, failures: map[string][]time.Time{}, hashing: make(chan struct{}, MaxConcurrentHashes)}
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

// sessionKey is what the store keeps of a session ID: its SHA-256.
func sessionKey(id string) []byte {
	h := sha256.Sum256([]byte(id))
	return h[:]
}

// csrfToken is a session's CSRF token, derived from its ID: no store keeps
// it, every node finds the same, and it tells nothing of the ID.
func csrfToken(id string) string {
	m := hmac.New(sha256.New, []byte(id))
	m.Write([]byte("mailbrake csrf token"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
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
	key := sessionKey(id)
	// The user as read before the password check: a change made meanwhile
	// (on any node) ends the session at its first request.
	se := store.Session{Hash: key, User: u.Name, Role: u.Role, UserUpdated: u.Updated, Created: now.UTC(), Seen: now.UTC()}
	if err := s.st.PutSession(ctx, se); err != nil {
		return nil, fmt.Errorf("starting a session: %w", err)
	}
	s.mu.Lock()
	s.remember(key, &known{name: u.Name, role: Role(u.Role), created: now, seen: now, checked: now, touched: now}, now)
	s.mu.Unlock()
	s.o.Log.Info("login", "user", u.Name, "role", u.Role, "remote", remoteIP)
	return &Principal{Name: u.Name, Role: Role(u.Role), Via: "session", SessionID: id, CSRF: csrfToken(id)}, nil
}

// Logout ends a session, on every node. When the store does not answer,
// the session is refused here at once and deleted from the store once it
// answers; the error says it was not.
func (s *Service) Logout(ctx context.Context, sessionID string) error {
	key := sessionKey(sessionID)
	s.forget(key)
	if err := s.st.DeleteSession(ctx, key); err != nil {
		s.mu.Lock()
		s.ended[string(key)] = s.o.Now()
		s.mu.Unlock()
		return fmt.Errorf("ending the session in the store (it is refused on this node): %w", err)
	}
	return nil
}

// EndSessions ends every session of a user, on every node (after a
// password change, a role change or removal). A session whose user
// changed is refused anyway at its next request, on any node, even when
// this fails.
func (s *Service) EndSessions(ctx context.Context, name string) error {
	s.mu.Lock()
	for k, v := range s.known {
		if v.name == name {
			delete(s.known, k)
		}
	}
	s.mu.Unlock()
	n, err := s.st.DeleteUserSessions(ctx, name)
	if err != nil {
		return fmt.Errorf("ending the sessions of %s: %w", name, err)
	}
	if n > 0 {
		s.o.Log.Info("sessions ended", "user", name, "sessions", n)
	}
	return nil
}

// Session returns the principal of a live session. It reads the session
// and its user from the store: a session ended on any node, idle longer
// than IdleTimeout, older than MaxAge, or whose user was removed or
// changed since it began (a role, a password) is refused with
// ErrUnauthenticated. While the store does not answer, a session this
// node checked within OutageGrace goes on; any other gets the store's
// error.
func (s *Service) Session(ctx context.Context, sessionID string) (*Principal, error) {
	if sessionID == "" || len(sessionID) > 200 {
		return nil, ErrUnauthenticated
	}
	now := s.o.Now()
	key := sessionKey(sessionID)
	k, err := s.check(ctx, key, now)
	if err != nil && !errors.Is(err, ErrUnauthenticated) {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if k = s.remembered(key, now); k == nil {
			if errors.Is(err, context.DeadlineExceeded) {
				// The check's own bound, not the request's: the store
				// does not answer, which is no deadline of the caller.
				return nil, fmt.Errorf("checking the session: the records store did not answer within %s", storeTimeout)
			}
			return nil, fmt.Errorf("checking the session: %w", err)
		}
		s.mu.Lock()
		said := s.outage
		s.outage = true
		s.mu.Unlock()
		if !said {
			s.o.Log.Warn("the records store does not answer: web sessions checked on this node within the grace go on, others are refused",
				"grace", OutageGrace, "err", err)
		}
		err = nil
	}
	if err != nil {
		return nil, err
	}
	return &Principal{Name: k.name, Role: k.role, Via: "session", SessionID: sessionID, CSRF: csrfToken(sessionID)}, nil
}

// check reads a session and its user from the store. An error other than
// ErrUnauthenticated is the store's.
func (s *Service) check(ctx context.Context, key []byte, now time.Time) (*known, error) {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	s.mu.Lock()
	_, ended := s.ended[string(key)]
	s.mu.Unlock()
	if ended {
		// Signed out here while the store did not answer.
		if err := s.st.DeleteSession(ctx, key); err == nil {
			s.mu.Lock()
			delete(s.ended, string(key))
			s.mu.Unlock()
		}
		return nil, ErrUnauthenticated
	}
	se, err := s.st.GetSession(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		s.forget(key)
		return nil, ErrUnauthenticated
	}
	if err != nil {
		return nil, err
	}
	s.answered(ctx, now)
	seen := se.Seen
	s.mu.Lock()
	if k := s.known[string(key)]; k != nil && k.seen.After(seen) {
		seen = k.seen
	}
	s.mu.Unlock()
	if now.Sub(seen) > s.o.IdleTimeout || now.Sub(se.Created) > s.o.MaxAge {
		s.end(ctx, key, se.User, "expired")
		return nil, ErrUnauthenticated
	}
	u, err := s.st.GetUser(ctx, se.User)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.end(ctx, key, se.User, "its user was removed")
		return nil, ErrUnauthenticated
	case err != nil:
		return nil, err
	case u.Role != se.Role || !u.Updated.Equal(se.UserUpdated):
		s.end(ctx, key, se.User, "its user changed since it began")
		return nil, ErrUnauthenticated
	}
	s.mu.Lock()
	k := s.known[string(key)]
	if k == nil {
		k = &known{}
		s.remember(key, k, now)
	}
	k.name, k.role, k.created, k.seen, k.checked = se.User, Role(se.Role), se.Created, now, now
	// Written at most once a minute, by any node; a write that failed
	// is not tried again here within the minute.
	touch := now.Sub(se.Seen) >= TouchEvery && now.Sub(k.touched) >= TouchEvery
	if touch {
		k.touched = now
	}
	kk := *k
	s.mu.Unlock()
	if touch {
		if err := s.st.TouchSession(ctx, key, now.UTC()); err != nil {
			s.o.Log.Debug("recording a session's request failed", "user", se.User, "err", err)
		}
	}
	return &kk, nil
}

// answered notes that the store answered a session check: after an outage
// it says so, and deletes the sessions signed out here meanwhile.
func (s *Service) answered(ctx context.Context, now time.Time) {
	s.mu.Lock()
	was := s.outage
	s.outage = false
	// Tried at most once a minute: a store that answers reads may still
	// take no writes (a SQLite file locked by another process).
	ended := len(s.ended) > 0 && now.Sub(s.endedTried) >= TouchEvery
	if ended {
		s.endedTried = now
	}
	s.mu.Unlock()
	if was {
		s.o.Log.Info("the records store answers again: web sessions are checked there")
	}
	if ended {
		s.deleteEnded(ctx)
	}
}

// deleteEnded deletes from the store the sessions signed out here while it
// did not answer (forgotten after MaxAge: expired anyway).
func (s *Service) deleteEnded(ctx context.Context) {
	now := s.o.Now()
	s.mu.Lock()
	keys := make([]string, 0, len(s.ended))
	for k, at := range s.ended {
		if now.Sub(at) > s.o.MaxAge {
			delete(s.ended, k)
			continue
		}
		keys = append(keys, k)
	}
	s.mu.Unlock()
	for _, k := range keys {
		if err := s.st.DeleteSession(ctx, []byte(k)); err != nil {
			return
		}
		s.mu.Lock()
		delete(s.ended, k)
		s.mu.Unlock()
	}
}

// end deletes a session that is over from the store, and forgets it.
func (s *Service) end(ctx context.Context, key []byte, user, why string) {
	s.forget(key)
	if err := s.st.DeleteSession(ctx, key); err != nil {
		s.o.Log.Warn("deleting a session that is over failed", "user", user, "why", why, "err", err)
		return
	}
	s.o.Log.Info("session ended: "+why, "user", user)
}

func (s *Service) forget(key []byte) {
	s.mu.Lock()
	delete(s.known, string(key))
	s.mu.Unlock()
}

// remember keeps k as a session checked at now (unless this node already
// remembers maxKnown sessions checked within the grace). s.mu is held.
func (s *Service) remember(key []byte, k *known, now time.Time) {
	if _, ok := s.known[string(key)]; !ok && len(s.known) >= maxKnown {
		s.sweep(now)
		if len(s.known) >= maxKnown {
			return
		}
	}
	s.known[string(key)] = k
}

// sweep forgets the sessions that neither the grace nor the idle time
// needs any longer. s.mu is held.
func (s *Service) sweep(now time.Time) {
	keep := max(OutageGrace, s.o.IdleTimeout)
	for key, k := range s.known {
		if now.Sub(k.checked) > keep {
			delete(s.known, key)
		}
	}
}

// remembered returns a session this node checked within OutageGrace and
// still within its idle time and maximal age, as it was then; nil when
// there is none.
func (s *Service) remembered(key []byte, now time.Time) *known {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ended := s.ended[string(key)]; ended {
		return nil
	}
	k := s.known[string(key)]
	if k == nil || now.Sub(k.checked) > OutageGrace || now.Sub(k.seen) > s.o.IdleTimeout || now.Sub(k.created) > s.o.MaxAge {
		return nil
	}
	k.seen = now
	kk := *k
	return &kk
}

// PruneSessions deletes the expired sessions from the store (every node
// prunes; each session goes once) and forgets what this node no longer
// needs. It says how many it deleted.
func (s *Service) PruneSessions(ctx context.Context) (int64, error) {
	now := s.o.Now()
	s.mu.Lock()
	s.sweep(now)
	s.mu.Unlock()
	s.deleteEnded(ctx)
	// Seen may be TouchEvery late: a session is pruned only once it is
	// idle by the store's account too.
	return s.st.PruneSessions(ctx, now.Add(-s.o.IdleTimeout-TouchEvery).UTC(), now.Add(-s.o.MaxAge).UTC())
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
	// Bounded like a session check: a records store cut off by the
	// network must not hold every API request until TCP gives up.
	rctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	t, err := s.st.GetToken(rctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrUnauthenticated
	}
	if err != nil {
		if rctx.Err() != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("checking the API token: the records store did not answer within %s", storeTimeout)
		}
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
		_ = s.st.TouchToken(rctx, id, now.UTC())
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
	return s.Session(r.Context(), c.Value)
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
