package store

import (
	"context"
	"time"
)

// User is a local user of the web UI and the REST API. Hash is an argon2id
// PHC string; it never leaves the store and the auth package.
type User struct {
	Name    string    `json:"name"`
	Role    string    `json:"role"`
	Hash    string    `json:"-"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// Token is an API token. Only a SHA-256 of its secret is kept.
type Token struct {
	ID       string    `json:"id"` // public part, shown in listings
	Name     string    `json:"name"`
	Role     string    `json:"role"`
	Hash     []byte    `json:"-"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires,omitempty"` // zero: never
	LastUsed time.Time `json:"last_used,omitempty"`
	By       string    `json:"by,omitempty"`
}

// Users stores users and API tokens.
type Users interface {
	GetUser(ctx context.Context, name string) (*User, error) // ErrNotFound
	// PutUser inserts or replaces a user.
	PutUser(ctx context.Context, u User) error
	DeleteUser(ctx context.Context, name string) error // ErrNotFound
	ListUsers(ctx context.Context) ([]User, error)
	PutToken(ctx context.Context, t Token) error
	GetToken(ctx context.Context, id string) (*Token, error) // ErrNotFound
	ListTokens(ctx context.Context) ([]Token, error)
	DeleteToken(ctx context.Context, id string) error // ErrNotFound
	// TouchToken records a use of the token (at most once a minute matters).
	TouchToken(ctx context.Context, id string, at time.Time) error
}

// Session is a browser session of a user (the web UI, and the REST API
// called with its cookie). The session ID — the cookie's value — is never
// stored, only its SHA-256: a copy of the store lets nobody in. The
// session's CSRF token is derived from the ID (internal/auth), so it is not
// stored either.
type Session struct {
	Hash []byte // SHA-256 of the session ID, 32 bytes
	User string
	Role string // the user's role when the session began
	// UserUpdated is the user's Updated when the session began: a user
	// changed since (a role, a password, removed and added again) is
	// refused the session.
	UserUpdated time.Time
	Created     time.Time
	// Seen is the last request of the session recorded: it is touched at
	// most once a minute, so it may be a minute late.
	Seen time.Time
}

// Sessions stores browser sessions, so that every node of a cluster knows
// each one and a session ended on one node is ended on all of them.
type Sessions interface {
	// PutSession records a new session.
	PutSession(ctx context.Context, s Session) error
	GetSession(ctx context.Context, hash []byte) (*Session, error) // ErrNotFound
	// TouchSession records a request of the session at at; a later Seen
	// already stored stays.
	TouchSession(ctx context.Context, hash []byte, at time.Time) error
	// DeleteSession ends a session; one that does not exist is not an
	// error.
	DeleteSession(ctx context.Context, hash []byte) error
	// DeleteUserSessions ends every session of a user and says how many
	// there were.
	DeleteUserSessions(ctx context.Context, user string) (int64, error)
	// PruneSessions deletes the sessions last seen before seenBefore or
	// begun before createdBefore, and says how many.
	PruneSessions(ctx context.Context, seenBefore, createdBefore time.Time) (int64, error)
}
