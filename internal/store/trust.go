package store

import (
	"context"
	"time"
)

// TrustEntry lets an account send with one client family without its rule
// and volume findings acting, until Until ("release and trust": an admin
// released a legitimate bulk message and trusts the sender for a while).
type TrustEntry struct {
	ID           int64     `json:"id"`
	Account      string    `json:"account"`
	ClientFamily string    `json:"client_family"`
	Until        time.Time `json:"until"`
	Created      time.Time `json:"created"`
	By           string    `json:"by"`
	Note         string    `json:"note,omitempty"`
	HoldID       int64     `json:"hold_id,omitempty"`
}

// Trust stores trust entries.
type Trust interface {
	PutTrust(ctx context.Context, e TrustEntry) (int64, error)
	// ListTrust returns the entries still valid at at.
	ListTrust(ctx context.Context, at time.Time) ([]TrustEntry, error)
	DeleteTrust(ctx context.Context, id int64) error // ErrNotFound
}
