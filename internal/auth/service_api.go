package auth

import (
	"errors"
	"fmt"
)

// Names shared by the web UI and the API server.
const (
	// SessionCookie holds the session ID (HttpOnly, SameSite=Strict,
	// Secure under TLS).
	SessionCookie = "mailbrake_session"
	// CSRFField is the form field, and CSRFHeader the header (for htmx
	// and API clients using a session), that carry the session's CSRF
	// token on every state-changing request.
	CSRFField  = "csrf"
	CSRFHeader = "X-CSRF-Token"
)

// Errors of the Service.
var (
	ErrUnauthenticated = errors.New("not authenticated")
	ErrBadCredentials  = errors.New("wrong user name or password")
	ErrRateLimited     = errors.New("too many failed logins; try again later")
	// ErrBusy: too many logins being checked at once (a flood); it is a
	// rate limit to the caller.
	ErrBusy      = fmt.Errorf("%w (too many logins at once)", ErrRateLimited)
	ErrForbidden = errors.New("not allowed for this role")
	ErrCSRF      = errors.New("missing or wrong CSRF token")
)
