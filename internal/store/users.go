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
