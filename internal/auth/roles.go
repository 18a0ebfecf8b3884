package auth

import (
	"context"
	"slices"
)

// Role is a user's role. The values are stable.
type Role string

const (
	// RoleAdmin may do everything.
	RoleAdmin Role = "admin"
	// RoleHelpdesk sees accounts and incidents and unlocks an account once
	// its password was reset; it never sees message content.
	RoleHelpdesk Role = "helpdesk"
	// RoleViewer sees everything an admin sees, read-only.
	RoleViewer Role = "viewer"
)

// Roles lists the roles.
var Roles = []Role{RoleAdmin, RoleHelpdesk, RoleViewer}

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return slices.Contains(Roles, r) }

// Permission is what one operation needs. The values are stable.
type Permission string

const (
	PermHoldsRead      Permission = "holds:read"      // list held messages: envelope, reasons
	PermHoldsContent   Permission = "holds:content"   // headers and text preview of held messages
	PermHoldsAct       Permission = "holds:act"       // release, delete, mark as spam, release and trust
	PermAccountsRead   Permission = "accounts:read"   // account states, counters, timelines
	PermAccountsAct    Permission = "accounts:act"    // restrict, unrestrict, watch, lock
	PermAccountsUnlock Permission = "accounts:unlock" // unlock after a password reset
	PermIncidentsRead  Permission = "incidents:read"  // incidents, evidence, steps
	PermIncidentsAct   Permission = "incidents:act"   // open, confirm, dismiss, resolve
	PermAuditRead      Permission = "audit:read"
	PermConfigRead     Permission = "config:read" // the effective configuration, secrets redacted
	PermUsersAdmin     Permission = "users:admin" // users and API tokens
)

// Permissions lists every permission.
var Permissions = []Permission{PermHoldsRead, PermHoldsContent, PermHoldsAct, PermAccountsRead, PermAccountsAct, PermAccountsUnlock,
	PermIncidentsRead, PermIncidentsAct, PermAuditRead, PermConfigRead, PermUsersAdmin}

var grants = map[Role][]Permission{
	RoleAdmin:    Permissions,
	RoleHelpdesk: {PermHoldsRead, PermAccountsRead, PermAccountsUnlock, PermIncidentsRead},
	RoleViewer:   {PermHoldsRead, PermHoldsContent, PermAccountsRead, PermIncidentsRead, PermAuditRead, PermConfigRead},
}

// Can reports whether role r has permission p.
func (r Role) Can(p Permission) bool { return slices.Contains(grants[r], p) }

// Principal is who makes a request.
type Principal struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
	// Via is how the request was authenticated: "session", "token" or
	// "socket" (the admin unix socket).
	Via string `json:"via"`
	// SessionID is set for browser sessions (for logout); never shown.
	SessionID string `json:"-"`
	// CSRF is the session's CSRF token, for forms; empty for tokens.
	CSRF string `json:"-"`
}

// Can reports whether the principal has permission p.
func (p *Principal) Can(perm Permission) bool { return p != nil && p.Role.Can(perm) }

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the request's principal, or nil.
func FromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}
