package auth

import "errors"

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
	ErrForbidden       = errors.New("not allowed for this role")
	ErrCSRF            = errors.New("missing or wrong CSRF token")
)
