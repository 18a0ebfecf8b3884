package web

import (
	"cmp"
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/auth"
)

//go:embed static templates
var content embed.FS

// Authenticator signs users in and out and finds the principal of a
// request. internal/auth implements it.
type Authenticator interface {
	// Login checks a password and starts a session; the principal returned
	// carries SessionID and CSRF. Errors: auth.ErrBadCredentials,
	// auth.ErrRateLimited.
	Login(ctx context.Context, name, password, remoteIP string) (*auth.Principal, error)
	// Logout ends a session.
	Logout(ctx context.Context, sessionID string) error
	// Authenticate returns the principal of a request, from the session
	// cookie (auth.SessionCookie) or an "Authorization: Bearer" token, or
	// auth.ErrUnauthenticated.
	Authenticate(r *http.Request) (*auth.Principal, error)
}

// Options configures a Server.
type Options struct {
	Methods api.Methods
	Auth    Authenticator
	Logger  *slog.Logger
	Secure  bool // served over TLS: cookies get the Secure attribute
	Version string
}

// Server is the admin web UI.
type Server struct {
	o       Options
	log     *slog.Logger
	pages   map[string]*template.Template
	handler http.Handler
	routes  []route
}

// route is one registered page or action and what it needs.
type route struct {
	method, pattern string
	// perms: the principal needs one of them; none means any signed-in
	// principal, and public routes need no principal at all.
	perms  []auth.Permission
	public bool
	h      http.HandlerFunc
}

// maxForm bounds the body of a form post: the largest is a bulk selection
// of a few hundred hold IDs.
const maxForm = 256 << 10

// contentSecurityPolicy allows scripts and styles only from our own static
// files: no inline script, no inline style, no eval.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// New returns a Server.
func New(o Options) (*Server, error) {
	if o.Methods == nil {
		return nil, errors.New("web: no Methods")
	}
	if o.Auth == nil {
		return nil, errors.New("web: no Authenticator")
	}
	s := &Server{o: o, log: o.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	var err error
	if s.pages, err = parsePages(); err != nil {
		return nil, err
	}
	static, err := fs.Sub(content, "static")
	if err != nil {
		return nil, fmt.Errorf("web: static files: %w", err)
	}
	files := http.StripPrefix("/static/", http.FileServerFS(static))

	s.routes = []route{
		{method: "GET", pattern: "/login", public: true, h: s.loginPage},
		{method: "POST", pattern: "/login", public: true, h: s.login},
		{method: "GET", pattern: "/static/", public: true, h: func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/") { // no directory listings
				http.NotFound(w, r)
				return
			}
			files.ServeHTTP(w, r)
		}},
		{method: "POST", pattern: "/logout", h: s.logout},

		{method: "GET", pattern: "/{$}", perms: dashboardPerms, h: s.dashboard},

		{method: "GET", pattern: "/quarantine", perms: perms(auth.PermHoldsRead), h: s.quarantine},
		{method: "POST", pattern: "/quarantine/bulk", perms: perms(auth.PermHoldsAct), h: s.bulk},
		{method: "POST", pattern: "/quarantine/all", perms: perms(auth.PermHoldsAct), h: s.bulkAll},
		{method: "GET", pattern: "/quarantine/{id}", perms: perms(auth.PermHoldsRead), h: s.hold},
		{method: "POST", pattern: "/quarantine/{id}/release", perms: perms(auth.PermHoldsAct), h: s.holdAction},
		{method: "POST", pattern: "/quarantine/{id}/delete", perms: perms(auth.PermHoldsAct), h: s.holdAction},
		{method: "POST", pattern: "/quarantine/{id}/spam", perms: perms(auth.PermHoldsAct), h: s.markSpam},
		{method: "POST", pattern: "/quarantine/{id}/trust", perms: perms(auth.PermHoldsAct), h: s.releaseAndTrust},

		{method: "GET", pattern: "/accounts", perms: perms(auth.PermAccountsRead), h: s.accounts},
		{method: "GET", pattern: "/accounts/{name}", perms: perms(auth.PermAccountsRead), h: s.account},
		{method: "POST", pattern: "/accounts/{name}/state", perms: perms(auth.PermAccountsAct), h: s.setAccountState},
		{method: "POST", pattern: "/accounts/{name}/unlock", perms: perms(auth.PermAccountsUnlock), h: s.unlockAccount},

		{method: "GET", pattern: "/incidents", perms: perms(auth.PermIncidentsRead), h: s.incidents},
		{method: "POST", pattern: "/incidents", perms: perms(auth.PermIncidentsAct), h: s.openIncident},
		{method: "GET", pattern: "/incidents/{id}", perms: perms(auth.PermIncidentsRead), h: s.incident},
		{method: "POST", pattern: "/incidents/{id}/{change}", perms: perms(auth.PermIncidentsAct), h: s.changeIncident},

		{method: "GET", pattern: "/trust", perms: perms(auth.PermHoldsRead), h: s.trust},
		{method: "GET", pattern: "/nodes", perms: perms(auth.PermHoldsRead), h: s.nodes},
		{method: "POST", pattern: "/nodes/{name}/retire", perms: perms(auth.PermUsersAdmin), h: s.retireNode},
		{method: "POST", pattern: "/trust/{id}/end", perms: perms(auth.PermHoldsAct), h: s.endTrust},

		{method: "GET", pattern: "/users", perms: perms(auth.PermUsersAdmin), h: s.users},
		{method: "POST", pattern: "/users", perms: perms(auth.PermUsersAdmin), h: s.putUser},
		{method: "POST", pattern: "/users/{name}/remove", perms: perms(auth.PermUsersAdmin), h: s.removeUser},
		{method: "POST", pattern: "/tokens", perms: perms(auth.PermUsersAdmin), h: s.createToken},
		{method: "POST", pattern: "/tokens/{id}/revoke", perms: perms(auth.PermUsersAdmin), h: s.revokeToken},

		{method: "GET", pattern: "/audit", perms: perms(auth.PermAuditRead), h: s.audit},
		{method: "GET", pattern: "/config", perms: perms(auth.PermConfigRead), h: s.config},
	}
	mux := http.NewServeMux()
	for _, rt := range s.routes {
		var h http.Handler = rt.h
		if !rt.public {
			h = s.protect(rt)
		}
		mux.Handle(rt.method+" "+rt.pattern, h)
	}
	// Anything else: signed-in users see the 404 page, others sign in first.
	mux.Handle("/", s.protect(route{h: func(w http.ResponseWriter, r *http.Request) {
		s.renderError(w, r, http.StatusNotFound, "There is no such page.")
	}}))
	// Browsers mark cross-site requests (Sec-Fetch-Site, Origin): refused
	// for every state change, the login included, before the CSRF token
	// is even looked at.
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.renderError(w, r, http.StatusForbidden, "Cross-site request refused.")
	}))
	s.handler = s.secure(cop.Handler(mux))
	return s, nil
}

// Handler returns the UI's handler, to be served under "/".
func (s *Server) Handler() http.Handler { return s.handler }

func perms(p ...auth.Permission) []auth.Permission { return p }

// dashboardPerms: the dashboard shows the parts the role may read.
var dashboardPerms = perms(auth.PermHoldsRead, auth.PermAccountsRead, auth.PermIncidentsRead)

func canAny(p *auth.Principal, ps []auth.Permission) bool {
	if len(ps) == 0 {
		return p != nil
	}
	for _, perm := range ps {
		if p.Can(perm) {
			return true
		}
	}
	return false
}

// secure sets the security headers of every response.
func (s *Server) secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		if strings.HasPrefix(r.URL.Path, "/static/") {
			// Asset URLs carry ?v=Version, so a new release is fetched anew.
			h.Set("Cache-Control", "public, max-age=3600")
		} else {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// protect authenticates the request, checks the CSRF token of a
// state-changing request made with a session, and then the route's
// permission.
func (s *Server) protect(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.o.Auth.Authenticate(r)
		if err != nil && !errors.Is(err, auth.ErrUnauthenticated) {
			// Sessions are records: while the store does not answer, a
			// session this node has not checked lately cannot be, and
			// the page says why (the cookie stays for when it answers).
			if xerr := s.explain(r, err); errors.Is(xerr, api.ErrUnavailable) {
				s.renderError(w, r, http.StatusServiceUnavailable, "Your session cannot be checked now: "+xerr.Error())
				return
			}
			s.log.Error("web: authenticating a request", "method", r.Method, "path", r.URL.Path, "err", err)
			s.renderError(w, r, http.StatusInternalServerError, "")
			return
		}
		if p == nil || err != nil {
			s.unauthenticated(w, r)
			return
		}
		ctx := auth.WithPrincipal(r.Context(), p)
		// The actor as the API gate names it; NoContent makes ops strip
		// headers and previews for roles without holds:content.
		actor := p.Name
		if p.Via == "session" {
			actor = "web:" + p.Name
		}
		ctx = api.WithActor(ctx, api.Actor{Name: actor, NoContent: !p.Can(auth.PermHoldsContent)})
		r = r.WithContext(ctx)
		if stateChanging(r.Method) {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
			if p.Via == "session" && !csrfOK(r, p) {
				s.renderError(w, r, http.StatusForbidden, "The form's security token is missing or out of date. Reload the page and try again.")
				return
			}
		}
		if !canAny(p, rt.perms) {
			s.renderError(w, r, http.StatusForbidden, "Your role ("+string(p.Role)+") may not do this.")
			return
		}
		rt.h(w, r)
	})
}

func stateChanging(method string) bool {
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

// csrfOK compares the request's CSRF token (header or form field) with the
// session's in constant time.
func csrfOK(r *http.Request, p *auth.Principal) bool {
	got := r.Header.Get(auth.CSRFHeader)
	if got == "" {
		got = r.PostFormValue(auth.CSRFField)
	}
	return got != "" && p.CSRF != "" && subtle.ConstantTimeCompare([]byte(got), []byte(p.CSRF)) == 1
}

// unauthenticated sends a browser to the login page and answers anything
// else with 401.
func (s *Server) unauthenticated(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(auth.SessionCookie); err == nil && c.Value != "" {
		s.clearCookie(w) // an ended or expired session
	}
	login := "/login"
	if r.URL.Path != "/" {
		login += "?next=" + url.QueryEscape(r.URL.RequestURI())
	}
	if r.Header.Get("HX-Request") == "true" {
		w.Header().Set("HX-Redirect", login)
		s.renderError(w, r, http.StatusUnauthorized, "Please sign in.")
		return
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		http.Redirect(w, r, login, http.StatusSeeOther)
		return
	}
	s.renderError(w, r, http.StatusUnauthorized, "Please sign in.")
}

func (s *Server) sessionCookie(value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name:     auth.SessionCookie,
		Value:    value,
		Path:     "/",
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   s.o.Secure,
		SameSite: http.SameSiteStrictMode,
	}
}

func (s *Server) clearCookie(w http.ResponseWriter) {
	http.SetCookie(w, s.sessionCookie("", -1))
}

// localPath returns s when it is a path on this site, else "": the target
// of a redirect after login or an action is never another site.
func localPath(s string) string {
	if s == "" || len(s) > 2048 || s[0] != '/' || strings.HasPrefix(s, "//") || strings.ContainsRune(s, '\\') {
		return ""
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return ""
		}
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || !strings.HasPrefix(u.Path, "/") {
		return ""
	}
	return s
}

// loginPage shows the login form, or sends a signed-in user on.
func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	next := localPath(r.URL.Query().Get("next"))
	if p, err := s.o.Auth.Authenticate(r); err == nil && p != nil {
		http.Redirect(w, r, cmp.Or(next, "/"), http.StatusSeeOther)
		return
	}
	pg := s.newPage(w, r, "Sign in", "")
	pg.Data = loginData{Next: next}
	s.render(w, r, http.StatusOK, "login", pg)
}

type loginData struct {
	Name, Next, Error string
}

// login checks the password and sets the session cookie.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		s.renderError(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	password := r.PostFormValue("password")
	next := localPath(r.PostFormValue("next"))
	remote, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		remote = r.RemoteAddr
	}
	p, err := s.o.Auth.Login(r.Context(), name, password, remote)
	if err != nil || p == nil || p.SessionID == "" {
		code, msg := http.StatusInternalServerError, "Signing in failed; see the server log."
		switch {
		case errors.Is(err, auth.ErrBadCredentials):
			code, msg = http.StatusUnauthorized, "Wrong user name or password."
		case errors.Is(err, auth.ErrRateLimited):
			code, msg = http.StatusTooManyRequests, "Too many failed logins. Try again later."
		default:
			// Users are records: no sign-in while the store does not
			// answer, and the page says so.
			if xerr := s.explain(r, err); errors.Is(xerr, api.ErrUnavailable) {
				code, msg = http.StatusServiceUnavailable, "Signing in is not possible now: "+xerr.Error()
				break
			}
			s.log.Error("web: login failed", "user", name, "remote", remote, "err", err)
		}
		pg := s.newPage(w, r, "Sign in", "")
		pg.Data = loginData{Name: name, Next: next, Error: msg}
		s.render(w, r, code, "login", pg)
		return
	}
	http.SetCookie(w, s.sessionCookie(p.SessionID, 0))
	http.Redirect(w, r, cmp.Or(next, "/"), http.StatusSeeOther)
}

// logout ends the session and clears the cookie.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	p := auth.FromContext(r.Context())
	if p.Via == "session" && p.SessionID != "" {
		if err := s.o.Auth.Logout(r.Context(), p.SessionID); err != nil {
			s.log.Error("web: logout", "user", p.Name, "err", err)
		}
	}
	s.clearCookie(w)
	s.setFlash(w, false, "Signed out.")
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
