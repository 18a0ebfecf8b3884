package web

import (
	"bytes"
	"fmt"
	"html"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/auth"
	"github.com/mailbrake/mailbrake/internal/store"
)

type env struct {
	t    *testing.T
	s    *Server
	h    http.Handler
	m    *fakeMethods
	a    *fakeAuth
	logs *bytes.Buffer
}

func newEnv(t *testing.T, secure bool) *env {
	t.Helper()
	e := &env{t: t, m: newFakeMethods(), a: newFakeAuth(), logs: &bytes.Buffer{}}
	var err error
	e.s, err = New(Options{Methods: e.m, Auth: e.a, Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Secure: secure, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	e.h = e.s.Handler()
	return e
}

// call is one request: a session (nil: none), the form of a POST, and
// the CSRF token to send ("" sends none).
type call struct {
	method, path string
	form         url.Values
	session      *auth.Principal
	csrf         string
	header       map[string]string
}

func (e *env) do(c call) *httptest.ResponseRecorder {
	e.t.Helper()
	form := url.Values{}
	for k, v := range c.form {
		form[k] = v
	}
	if c.csrf != "" {
		form.Set(auth.CSRFField, c.csrf)
	}
	var r *http.Request
	if c.method == http.MethodPost {
		r = httptest.NewRequest(c.method, c.path, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		r = httptest.NewRequest(c.method, c.path, nil)
	}
	if c.session != nil {
		r.AddCookie(&http.Cookie{Name: auth.SessionCookie, Value: c.session.SessionID})
	}
	for k, v := range c.header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

// as calls with a fresh session of user, the CSRF token included.
func (e *env) as(user string, c call) *httptest.ResponseRecorder {
	e.t.Helper()
	p := e.a.session(user)
	c.session, c.csrf = &p, p.CSRF
	return e.do(c)
}

// routeCase is one registered route, a concrete request for it, and the
// permissions it needs (any of them; none: any signed-in user). The list
// is written out here, not taken from the code, and TestRouteTableComplete
// makes sure it names every route.
type routeCase struct {
	pattern string
	path    string
	form    url.Values
	perms   []auth.Permission
}

var routeCases = []routeCase{
	{"GET /{$}", "/", nil, []auth.Permission{auth.PermHoldsRead, auth.PermAccountsRead, auth.PermIncidentsRead}},
	{"GET /quarantine", "/quarantine?state=all", nil, []auth.Permission{auth.PermHoldsRead}},
	{"POST /quarantine/bulk", "/quarantine/bulk", url.Values{"action": {"release"}, "id": {"1", "2"}}, []auth.Permission{auth.PermHoldsAct}},
	{"POST /quarantine/all", "/quarantine/all", url.Values{"action": {"release"}, "account": {"alice@example.org"}, "through": {"2"}, "expect": {"2"}}, []auth.Permission{auth.PermHoldsAct}},
	{"GET /quarantine/{id}", "/quarantine/1", nil, []auth.Permission{auth.PermHoldsRead}},
	{"POST /quarantine/{id}/release", "/quarantine/1/release", nil, []auth.Permission{auth.PermHoldsAct}},
	{"POST /quarantine/{id}/delete", "/quarantine/1/delete", nil, []auth.Permission{auth.PermHoldsAct}},
	{"POST /quarantine/{id}/spam", "/quarantine/1/spam", url.Values{"note": {"phishing"}}, []auth.Permission{auth.PermHoldsAct}},
	{"POST /quarantine/{id}/trust", "/quarantine/1/trust", url.Values{"duration": {"168h"}, "note": {"newsletter"}}, []auth.Permission{auth.PermHoldsAct}},
	{"GET /accounts", "/accounts", nil, []auth.Permission{auth.PermAccountsRead}},
	{"GET /accounts/{name}", "/accounts/alice@example.org", nil, []auth.Permission{auth.PermAccountsRead}},
	{"POST /accounts/{name}/state", "/accounts/bob@example.org/state", url.Values{"state": {"restricted"}, "reason": {"spam run"}}, []auth.Permission{auth.PermAccountsAct}},
	{"POST /accounts/{name}/unlock", "/accounts/alice@example.org/unlock", url.Values{"override": {"1"}, "reason": {"user called"}}, []auth.Permission{auth.PermAccountsUnlock}},
	{"GET /incidents", "/incidents", nil, []auth.Permission{auth.PermIncidentsRead}},
	{"POST /incidents", "/incidents", url.Values{"account": {"bob@example.org"}, "note": {"reported"}}, []auth.Permission{auth.PermIncidentsAct}},
	{"GET /incidents/{id}", "/incidents/7", nil, []auth.Permission{auth.PermIncidentsRead}},
	{"POST /incidents/{id}/{change}", "/incidents/7/confirm", url.Values{"note": {"checked"}}, []auth.Permission{auth.PermIncidentsAct}},
	{"GET /trust", "/trust", nil, []auth.Permission{auth.PermHoldsRead}},
	{"GET /nodes", "/nodes", nil, []auth.Permission{auth.PermHoldsRead}},
	{"POST /nodes/{name}/retire", "/nodes/mta-a.example.org/retire", nil, []auth.Permission{auth.PermUsersAdmin}},
	{"POST /trust/{id}/end", "/trust/5/end", nil, []auth.Permission{auth.PermHoldsAct}},
	{"GET /users", "/users", nil, []auth.Permission{auth.PermUsersAdmin}},
	{"POST /users", "/users", url.Values{"name": {"carol"}, "role": {"viewer"}, "password": {"a-long-enough-password"}}, []auth.Permission{auth.PermUsersAdmin}},
	{"POST /users/{name}/remove", "/users/carol/remove", nil, []auth.Permission{auth.PermUsersAdmin}},
	{"POST /tokens", "/tokens", url.Values{"name": {"ci"}, "role": {"viewer"}, "ttl": {"720h"}}, []auth.Permission{auth.PermUsersAdmin}},
	{"POST /tokens/{id}/revoke", "/tokens/abc/revoke", nil, []auth.Permission{auth.PermUsersAdmin}},
	{"GET /audit", "/audit?target=hold:1", nil, []auth.Permission{auth.PermAuditRead}},
	{"GET /config", "/config", nil, []auth.Permission{auth.PermConfigRead}},
	{"POST /logout", "/logout", nil, nil},
}

// publicRoutes need no principal.
var publicRoutes = []string{"GET /login", "POST /login", "GET /static/"}

func (rc routeCase) method() string { m, _, _ := strings.Cut(rc.pattern, " "); return m }

func TestRouteTableComplete(t *testing.T) {
	e := newEnv(t, false)
	var got, gotPublic, want []string
	for _, rt := range e.s.routes {
		if rt.public {
			gotPublic = append(gotPublic, rt.method+" "+rt.pattern)
		} else {
			got = append(got, rt.method+" "+rt.pattern)
		}
	}
	for _, rc := range routeCases {
		want = append(want, rc.pattern)
	}
	slices.Sort(got)
	slices.Sort(want)
	slices.Sort(gotPublic)
	wantPublic := slices.Sorted(slices.Values(publicRoutes))
	if !slices.Equal(got, want) {
		t.Errorf("protected routes:\n got %q\nwant %q", got, want)
	}
	if !slices.Equal(gotPublic, wantPublic) {
		t.Errorf("public routes: got %q, want %q", gotPublic, wantPublic)
	}
}

func TestUnauthenticated(t *testing.T) {
	e := newEnv(t, false)
	cases := append(slices.Clone(routeCases), routeCase{"GET (unknown)", "/no/such/page", nil, nil})
	for _, rc := range cases {
		t.Run(rc.pattern, func(t *testing.T) {
			w := e.do(call{method: rc.method(), path: rc.path, form: rc.form})
			if rc.method() == http.MethodGet {
				loc := w.Header().Get("Location")
				if w.Code != http.StatusSeeOther || !strings.HasPrefix(loc, "/login") {
					t.Fatalf("got %d Location %q, want 303 to /login", w.Code, loc)
				}
				if rc.path != "/" {
					u, _ := url.Parse(loc)
					if next := u.Query().Get("next"); next != rc.path {
						t.Errorf("next = %q, want %q", next, rc.path)
					}
				}
				return
			}
			if w.Code != http.StatusUnauthorized {
				t.Fatalf("got %d, want 401", w.Code)
			}
		})
	}
	if n := e.m.changes.Load(); n != 0 {
		t.Errorf("%d state changes without a principal", n)
	}
	// An ended session is refused and its cookie cleared.
	p := e.a.session("admin")
	_ = e.a.Logout(t.Context(), p.SessionID)
	w := e.do(call{method: "GET", path: "/quarantine", session: &p})
	if w.Code != http.StatusSeeOther || !strings.Contains(w.Header().Get("Set-Cookie"), auth.SessionCookie+"=;") {
		t.Errorf("ended session: %d, Set-Cookie %q", w.Code, w.Header().Get("Set-Cookie"))
	}
}

func TestCSRF(t *testing.T) {
	for _, rc := range routeCases {
		if rc.method() != http.MethodPost {
			continue
		}
		t.Run(rc.pattern, func(t *testing.T) {
			e := newEnv(t, false)
			p := e.a.session("admin")
			for _, c := range []call{
				{csrf: ""},
				{csrf: "wrong"},
				{csrf: p.CSRF[:len(p.CSRF)-1]},
				{header: map[string]string{auth.CSRFHeader: "wrong"}},
			} {
				c.method, c.path, c.form, c.session = "POST", rc.path, rc.form, &p
				if w := e.do(c); w.Code != http.StatusForbidden {
					t.Errorf("csrf %q header %v: got %d, want 403", c.csrf, c.header, w.Code)
				}
			}
			if n := e.m.changes.Load(); n != 0 {
				t.Errorf("%d state changes without a valid CSRF token", n)
			}
			if _, err := e.a.Authenticate(withCookie(p.SessionID)); err != nil {
				t.Errorf("session ended by a request without CSRF token")
			}
			// The right token in the header (htmx) passes.
			w := e.do(call{method: "POST", path: rc.path, form: rc.form, session: &p, header: map[string]string{auth.CSRFHeader: p.CSRF}})
			if w.Code != http.StatusSeeOther && w.Code != http.StatusOK {
				t.Errorf("with the CSRF header: got %d", w.Code)
			}
		})
	}
}

func withCookie(sid string) *http.Request {
	r := httptest.NewRequest("GET", "/", nil)
	r.AddCookie(&http.Cookie{Name: auth.SessionCookie, Value: sid})
	return r
}

// TestCrossSite: a browser's cross-site post is refused, the login too.
func TestCrossSite(t *testing.T) {
	e := newEnv(t, false)
	cross := map[string]string{"Sec-Fetch-Site": "cross-site"}
	w := e.do(call{method: "POST", path: "/login", form: url.Values{"name": {"viewer"}, "password": {"viewer-pw"}}, header: cross})
	if w.Code != http.StatusForbidden || cookieNamed(w, auth.SessionCookie) != nil {
		t.Errorf("cross-site login: %d", w.Code)
	}
	w = e.as("admin", call{method: "POST", path: "/quarantine/1/release", header: map[string]string{"Origin": "https://evil.example"}})
	if w.Code != http.StatusForbidden || e.m.changes.Load() != 0 {
		t.Errorf("cross-origin release: %d", w.Code)
	}
	w = e.as("admin", call{method: "POST", path: "/quarantine/1/release", header: map[string]string{"Sec-Fetch-Site": "same-origin"}})
	if w.Code != http.StatusSeeOther {
		t.Errorf("same-origin release: %d", w.Code)
	}
}

// TestTokenNeedsNoCSRF: a bearer token is not sent by a browser on its
// own, so its requests carry no CSRF token.
func TestTokenNeedsNoCSRF(t *testing.T) {
	e := newEnv(t, false)
	e.a.tokens["tok"] = auth.Principal{Name: "token:ci", Role: auth.RoleAdmin, Via: "token"}
	w := e.do(call{method: "POST", path: "/quarantine/1/release", header: map[string]string{"Authorization": "Bearer tok"}})
	if w.Code != http.StatusSeeOther {
		t.Fatalf("got %d, want 303", w.Code)
	}
	if a := e.m.actors[0]; a.Name != "token:ci" {
		t.Errorf("actor %q, want token:ci", a.Name)
	}
}

func TestRolePermissions(t *testing.T) {
	for _, role := range auth.Roles {
		for _, rc := range routeCases {
			t.Run(string(role)+" "+rc.pattern, func(t *testing.T) {
				e := newEnv(t, false)
				allowed := len(rc.perms) == 0 || slices.ContainsFunc(rc.perms, role.Can)
				w := e.as(string(role), call{method: rc.method(), path: rc.path, form: rc.form})
				want := http.StatusForbidden
				if allowed {
					want = http.StatusOK
					// Posts redirect, except token creation, whose
					// answer is the only page that shows the secret.
					if rc.method() == http.MethodPost && rc.pattern != "POST /tokens" {
						want = http.StatusSeeOther
					}
				}
				if w.Code != want {
					t.Fatalf("got %d, want %d; body:\n%.600s", w.Code, want, w.Body.String())
				}
				if !allowed && e.m.changes.Load() != 0 {
					t.Errorf("a refused request changed state")
				}
				if w.Code == http.StatusOK && !strings.Contains(w.Body.String(), "</html>") {
					t.Errorf("incomplete page:\n%s", w.Body.String())
				}
			})
		}
	}
}

// TestNavByRole: the nav names exactly the sections the role may read.
func TestNavByRole(t *testing.T) {
	sections := map[string]auth.Permission{"/quarantine": auth.PermHoldsRead, "/accounts": auth.PermAccountsRead,
		"/incidents": auth.PermIncidentsRead, "/audit": auth.PermAuditRead, "/config": auth.PermConfigRead, "/nodes": auth.PermHoldsRead}
	nav := regexp.MustCompile(`(?s)<nav aria-label="Sections">.*?</nav>`)
	for _, role := range auth.Roles {
		e := newEnv(t, false)
		body := nav.FindString(e.as(string(role), call{method: "GET", path: "/"}).Body.String())
		for href, perm := range sections {
			if got := strings.Contains(body, `href="`+href+`"`); got != role.Can(perm) {
				t.Errorf("%s: nav shows %s = %v, want %v", role, href, got, role.Can(perm))
			}
		}
	}
}

// TestHelpdeskNeverSeesContent: headers and preview never render without
// holds:content, even when the methods return them.
func TestHelpdeskNeverSeesContent(t *testing.T) {
	e := newEnv(t, false)
	pages := []string{"/quarantine/1", "/quarantine?state=all", "/accounts/alice@example.org", "/", "/incidents/7"}
	for _, role := range auth.Roles {
		for _, path := range pages {
			body := e.as(string(role), call{method: "GET", path: path}).Body.String()
			for _, s := range []string{previewSentinel, headersSentinel} {
				if strings.Contains(body, s) && !role.Can(auth.PermHoldsContent) {
					t.Errorf("%s sees %s on %s", role, s, path)
				}
			}
		}
	}
	// The sentinels are where they should be for a role with holds:content.
	body := e.as("viewer", call{method: "GET", path: "/quarantine/1"}).Body.String()
	if !strings.Contains(body, previewSentinel) || !strings.Contains(body, headersSentinel) {
		t.Errorf("viewer does not see the preview and headers:\n%s", body)
	}
	// The page says what would have let the message through.
	if want := html.EscapeString(api.LetThrough["bulk-from-scripted-client"]); !strings.Contains(body, "Would have gone through with") || !strings.Contains(body, want) {
		t.Errorf("hold page does not say what would have let it through (%q)", want)
	}
	// ops is told too, through the actor.
	e.as("helpdesk", call{method: "POST", path: "/accounts/alice@example.org/unlock", form: url.Values{"override": {"1"}, "reason": {"x"}}})
	if a := e.m.actors[len(e.m.actors)-1]; a.Name != "web:helpdesk" || !a.NoContent {
		t.Errorf("helpdesk actor %+v, want web:helpdesk with NoContent", a)
	}
}

func cookieNamed(w *httptest.ResponseRecorder, name string) *http.Cookie {
	for _, c := range w.Result().Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func TestLoginLogout(t *testing.T) {
	for _, secure := range []bool{false, true} {
		e := newEnv(t, secure)
		if w := e.do(call{method: "GET", path: "/login?next=/incidents"}); w.Code != 200 || !strings.Contains(w.Body.String(), `value="/incidents"`) {
			t.Fatalf("login page: %d\n%s", w.Code, w.Body.String())
		}
		w := e.do(call{method: "POST", path: "/login", form: url.Values{"name": {"admin"}, "password": {"wrong"}}})
		if w.Code != http.StatusUnauthorized || cookieNamed(w, auth.SessionCookie) != nil || !strings.Contains(w.Body.String(), "Wrong user name or password") {
			t.Fatalf("wrong password: %d, cookies %v", w.Code, w.Result().Cookies())
		}
		if w := e.do(call{method: "POST", path: "/login", form: url.Values{"name": {"limited"}, "password": {"x"}}}); w.Code != http.StatusTooManyRequests {
			t.Errorf("rate limited: got %d, want 429", w.Code)
		}
		w = e.do(call{method: "POST", path: "/login", form: url.Values{"name": {"admin"}, "password": {passwordSentinel}, "next": {"/quarantine?state=all"}}})
		if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/quarantine?state=all" {
			t.Fatalf("login: %d to %q", w.Code, w.Header().Get("Location"))
		}
		c := cookieNamed(w, auth.SessionCookie)
		if c == nil || c.Value == "" || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure != secure {
			t.Fatalf("session cookie %+v (secure %v)", c, secure)
		}
		p, err := e.a.Authenticate(withCookie(c.Value))
		if err != nil {
			t.Fatal(err)
		}
		if w := e.do(call{method: "GET", path: "/quarantine", session: p}); w.Code != 200 {
			t.Fatalf("after login: %d", w.Code)
		}
		// Signed in, the login page sends the user on.
		if w := e.do(call{method: "GET", path: "/login?next=/audit", session: p}); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/audit" {
			t.Errorf("login page when signed in: %d to %q", w.Code, w.Header().Get("Location"))
		}
		w = e.do(call{method: "POST", path: "/logout", session: p, csrf: p.CSRF})
		if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/login" || cookieNamed(w, flashCookie) == nil {
			t.Fatalf("logout: %d to %q, cookies %v", w.Code, w.Header().Get("Location"), w.Result().Cookies())
		}
		c = cookieNamed(w, auth.SessionCookie)
		if c == nil || c.MaxAge >= 0 || c.Value != "" || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure != secure {
			t.Fatalf("cleared cookie %+v", c)
		}
		if _, err := e.a.Authenticate(withCookie(p.SessionID)); err == nil {
			t.Errorf("session still valid after logout")
		}
		if w := e.do(call{method: "GET", path: "/quarantine", session: p}); w.Code != http.StatusSeeOther {
			t.Errorf("after logout: %d, want 303", w.Code)
		}
	}
}

func TestNoOpenRedirect(t *testing.T) {
	e := newEnv(t, false)
	bad := []string{"//evil.example", "//evil.example/path", "https://evil.example/", "http:evil.example", "/\\evil.example",
		"\\\\evil.example", "javascript:alert(1)", " //evil.example", "/\t/evil.example", "evil.example", "///evil.example"}
	for _, next := range bad {
		w := e.do(call{method: "POST", path: "/login", form: url.Values{"name": {"viewer"}, "password": {"viewer-pw"}, "next": {next}}})
		if loc := w.Header().Get("Location"); w.Code != http.StatusSeeOther || loc != "/" {
			t.Errorf("next=%q: %d to %q, want 303 to /", next, w.Code, loc)
		}
		body := e.do(call{method: "GET", path: "/login?next=" + url.QueryEscape(next)}).Body.String()
		if strings.Contains(body, "evil.example") {
			t.Errorf("next=%q kept in the login form", next)
		}
		w = e.as("admin", call{method: "GET", path: "/login?next=" + url.QueryEscape(next)})
		if loc := w.Header().Get("Location"); loc != "/" {
			t.Errorf("signed in, next=%q: to %q", next, loc)
		}
		w = e.as("admin", call{method: "POST", path: "/quarantine/2/delete", form: url.Values{"back": {next}}})
		if loc := w.Header().Get("Location"); strings.Contains(loc, "evil") {
			t.Errorf("back=%q: to %q", next, loc)
		}
	}
	for _, good := range []string{"/quarantine?state=all&account=a%40b", "/accounts/alice@example.org"} {
		w := e.do(call{method: "POST", path: "/login", form: url.Values{"name": {"viewer"}, "password": {"viewer-pw"}, "next": {good}}})
		if loc := w.Header().Get("Location"); loc != good {
			t.Errorf("next=%q: to %q", good, loc)
		}
	}
}

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t, false)
	p := e.a.session("admin")
	for _, c := range []call{
		{method: "GET", path: "/login"},
		{method: "POST", path: "/login", form: url.Values{"name": {"x"}}},
		{method: "GET", path: "/static/style.css"},
		{method: "GET", path: "/"},
		{method: "GET", path: "/quarantine"},
		{method: "POST", path: "/quarantine/1/release"},
		{method: "GET", path: "/", session: &p},
		{method: "GET", path: "/no/such/page", session: &p},
		{method: "GET", path: "/quarantine/999", session: &p},
		{method: "POST", path: "/quarantine/2/release", session: &p, csrf: p.CSRF},
		{method: "POST", path: "/quarantine/2/release", session: &p},
	} {
		w := e.do(c)
		h := w.Header()
		csp := h.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "unsafe") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s %s: CSP %q", c.method, c.path, csp)
		}
		for k, v := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"} {
			if h.Get(k) != v {
				t.Errorf("%s %s: %s = %q, want %q", c.method, c.path, k, h.Get(k), v)
			}
		}
		if !strings.HasPrefix(c.path, "/static/") && h.Get("Cache-Control") != "no-store" {
			t.Errorf("%s %s: Cache-Control %q", c.method, c.path, h.Get("Cache-Control"))
		}
	}
}

// TestNoSecretsInOutput: the admin's password and session IDs appear in no
// page and no log line.
func TestNoSecretsInOutput(t *testing.T) {
	e := newEnv(t, false)
	var bodies []string
	w := e.do(call{method: "POST", path: "/login", form: url.Values{"name": {"admin"}, "password": {passwordSentinel + "x"}}})
	bodies = append(bodies, w.Body.String())
	w = e.do(call{method: "POST", path: "/login", form: url.Values{"name": {"admin"}, "password": {passwordSentinel}}})
	sid := cookieNamed(w, auth.SessionCookie).Value
	p, _ := e.a.Authenticate(withCookie(sid))
	for _, rc := range routeCases {
		if rc.method() == http.MethodGet {
			bodies = append(bodies, e.do(call{method: "GET", path: rc.path, session: p}).Body.String())
		}
	}
	bodies = append(bodies, e.do(call{method: "GET", path: "/no/such", session: p}).Body.String())
	for i, b := range bodies {
		if strings.Contains(b, passwordSentinel) {
			t.Errorf("page %d shows the password", i)
		}
		if strings.Contains(b, sid) {
			t.Errorf("page %d shows the session ID", i)
		}
	}
	if strings.Contains(e.logs.String(), passwordSentinel) || strings.Contains(e.logs.String(), sid) {
		t.Errorf("logs carry a secret:\n%s", e.logs.String())
	}
}

func TestErrors(t *testing.T) {
	e := newEnv(t, false)
	for _, tc := range []struct {
		c    call
		code int
		text string
	}{
		{call{method: "GET", path: "/quarantine/999"}, 404, "not found"},
		{call{method: "GET", path: "/quarantine/abc"}, 404, "no such message"},
		{call{method: "GET", path: "/incidents/999"}, 404, "not found"},
		{call{method: "GET", path: "/no/such/page"}, 404, "no such page"},
		{call{method: "POST", path: "/quarantine/3/release"}, 409, "hold 3 is released"},
		{call{method: "POST", path: "/accounts/alice@example.org/unlock", form: url.Values{"reason": {"x"}}}, 409, unlockRefusal},
		{call{method: "POST", path: "/accounts/alice@example.org/unlock", form: url.Values{"override": {"1"}}}, 400, "an override needs a reason"},
		{call{method: "POST", path: "/accounts/alice@example.org/state", form: url.Values{"state": {"normal"}, "reason": {"x"}}}, 409, "is locked"},
		{call{method: "POST", path: "/accounts/bob@example.org/state", form: url.Values{"state": {"restricted"}}}, 400, "a reason is required"},
		{call{method: "POST", path: "/accounts/bob@example.org/state", form: url.Values{"state": {"deleted"}, "reason": {"x"}}}, 400, "restricted, normal, watch or locked"},
		{call{method: "POST", path: "/incidents/7/explode"}, 404, "no such incident change"},
		{call{method: "POST", path: "/quarantine/1/trust", form: url.Values{"duration": {"1s"}}}, 400, "between 1 minute and 90 days"},
		{call{method: "GET", path: "/quarantine?since=yesterday"}, 400, "not a time"},
		{call{method: "GET", path: "/accounts?state=bogus"}, 400, "state must be"},
	} {
		w := e.as("admin", tc.c)
		if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.text) {
			t.Errorf("%s %s: got %d, want %d with %q\n%.800s", tc.c.method, tc.c.path, w.Code, tc.code, tc.text, w.Body.String())
		}
	}
	// The refusal page links back to the account.
	w := e.as("admin", call{method: "POST", path: "/accounts/alice@example.org/unlock"})
	if !strings.Contains(w.Body.String(), `href="/accounts/alice@example.org"`) {
		t.Errorf("no link back:\n%s", w.Body.String())
	}
}

func TestFlash(t *testing.T) {
	e := newEnv(t, false)
	p := e.a.session("admin")
	w := e.do(call{method: "POST", path: "/quarantine/2/release", session: &p, csrf: p.CSRF})
	fl := cookieNamed(w, flashCookie)
	if w.Code != http.StatusSeeOther || fl == nil || !fl.HttpOnly {
		t.Fatalf("release: %d, flash cookie %+v", w.Code, fl)
	}
	r := httptest.NewRequest("GET", w.Header().Get("Location"), nil)
	r.AddCookie(&http.Cookie{Name: auth.SessionCookie, Value: p.SessionID})
	r.AddCookie(fl)
	w = httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	if !strings.Contains(w.Body.String(), "Message 2 released.") {
		t.Errorf("no flash:\n%s", w.Body.String())
	}
	if c := cookieNamed(w, flashCookie); c == nil || c.MaxAge >= 0 {
		t.Errorf("flash not cleared: %+v", c)
	}
}

func TestHTMXRow(t *testing.T) {
	e := newEnv(t, false)
	hx := map[string]string{"HX-Request": "true"}
	w := e.as("admin", call{method: "POST", path: "/quarantine/2/release", form: url.Values{"fragment": {"row"}}, header: hx})
	body := strings.TrimSpace(w.Body.String())
	if w.Code != 200 || !strings.HasPrefix(body, `<tr id="hold-2">`) || strings.Contains(body, "<html") || !strings.Contains(body, "released") {
		t.Fatalf("row: %d\n%s", w.Code, body)
	}
	w = e.as("admin", call{method: "POST", path: "/quarantine/3/release", form: url.Values{"fragment": {"row"}}, header: hx})
	if w.Code != http.StatusConflict || w.Header().Get("HX-Retarget") != "#flash" || strings.Contains(w.Body.String(), "<html") ||
		!strings.Contains(w.Body.String(), "hold 3 is released") {
		t.Errorf("row conflict: %d %v\n%s", w.Code, w.Header(), w.Body.String())
	}
}

func TestBulk(t *testing.T) {
	e := newEnv(t, false)
	w := e.as("admin", call{method: "POST", path: "/quarantine/bulk", form: url.Values{"action": {"delete"}, "id": {"1", "3", "999", "x"}}})
	body := w.Body.String()
	if w.Code != 200 || !strings.Contains(body, "1 of 4") || !strings.Contains(body, "hold 3 is released") ||
		!strings.Contains(body, "hold 999: not found") || !strings.Contains(body, "not a message ID") {
		t.Errorf("bulk: %d\n%s", w.Code, body)
	}
	w = e.as("admin", call{method: "POST", path: "/quarantine/bulk", form: url.Values{"action": {"release"}, "id": {"2"}, "back": {"/quarantine?state=all"}}})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/quarantine?state=all" {
		t.Errorf("bulk all done: %d to %q", w.Code, w.Header().Get("Location"))
	}
}

func TestQuarantineFilters(t *testing.T) {
	e := newEnv(t, false)
	w := e.as("admin", call{method: "GET", path: "/quarantine?state=all&account=alice@example.org&reason=rate-recipients-1h&family=scripted" +
		"&since=2025-03-04T10:00&until=2025-03-04T13:30&q=invoice&limit=10&offset=20"})
	if w.Code != 200 {
		t.Fatalf("%d\n%s", w.Code, w.Body.String())
	}
	r := e.m.lastList
	if r.State != "all" || r.Account != "alice@example.org" || r.Reason != "rate-recipients-1h" || r.ClientFamily != "scripted" ||
		r.Query != "invoice" || r.Limit != 10 || r.Offset != 20 ||
		!r.Since.Equal(t0.Add(-2*time.Hour)) || !r.Until.Equal(t0.Add(90*time.Minute)) {
		t.Errorf("ListHoldsRequest %+v", r)
	}
	if !strings.Contains(w.Body.String(), `href="/quarantine?account=alice%40example.org&amp;family=scripted&amp;limit=10&amp;offset=10`) {
		t.Errorf("no link to the newer page:\n%s", w.Body.String())
	}
	// The default lists held messages.
	e.as("admin", call{method: "GET", path: "/quarantine"})
	if e.m.lastList.State != "held" || e.m.lastList.Limit != defaultHoldLimit {
		t.Errorf("default request %+v", e.m.lastList)
	}
}

func TestEscaping(t *testing.T) {
	e := newEnv(t, false)
	body := e.as("admin", call{method: "GET", path: "/quarantine?state=all"}).Body.String()
	if strings.Contains(body, "<script>alert") || !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;@example.org") {
		t.Errorf("account name not escaped")
	}
}

func TestCharts(t *testing.T) {
	e := newEnv(t, false)
	for _, path := range []string{"/", "/accounts/alice@example.org"} {
		body := e.as("admin", call{method: "GET", path: path}).Body.String()
		if strings.Count(body, `class="bar-held"`) < 24 || !strings.Contains(body, "<svg") || !strings.Contains(body, "2025-03-04 12:00:00Z: 2 messages, 6 recipients, 2 held") {
			t.Errorf("%s: no chart:\n%s", path, body)
		}
	}
	if n := strings.Count(e.as("admin", call{method: "GET", path: "/"}).Body.String(), `class="bar-held"`); n != 24 {
		t.Errorf("dashboard: %d bars, want 24 hourly ones", n)
	}
	body := e.as("admin", call{method: "GET", path: "/accounts/alice@example.org"}).Body.String()
	// The account page adds the last 6 hours by five minutes: 72 columns,
	// where the ten-minute burst is two columns of its own.
	if n := strings.Count(body, `class="bar-held"`); n != 24+72 {
		t.Errorf("account page: %d bars, want 24 hourly and 72 five-minute ones", n)
	}
	for _, want := range []string{"per five minutes, last 6 hours", "2025-03-04 10:25:00Z: 20 messages, 1200 recipients, 20 held",
		"2025-03-04 10:30:00Z: 20 messages, 1200 recipients, 20 held", "2025-03-04 10:35:00Z: 0 messages"} {
		if !strings.Contains(body, want) {
			t.Errorf("five-minute chart lacks %q", want)
		}
	}
	for _, want := range []string{`class="event ev-state"`, "locked", "Usually 12 recipients a day (median of 14 days of history).", "A busy hour reaches 4.5 recipients", "Remembers 140 correspondents",
		"Score 10 in the last 24h, from 1 message: scripted 5, volume 5.", "one message never restricts an account"} {
		if !strings.Contains(body, want) {
			t.Errorf("account page lacks %q", want)
		}
	}
	if c := newChart("x", nil, nil); c != nil {
		t.Errorf("chart of nothing: %+v", c)
	}
	for v, want := range map[int64]int64{0: 2, 1: 2, 3: 5, 7: 10, 10: 10, 11: 20, 150: 200, 4999: 5000} {
		if got := niceCeil(v); got != want {
			t.Errorf("niceCeil(%d) = %d, want %d", v, got, want)
		}
	}
}

func TestStatic(t *testing.T) {
	e := newEnv(t, false)
	w := e.do(call{method: "GET", path: "/static/htmx.min.js"})
	if w.Code != 200 || !strings.Contains(w.Header().Get("Content-Type"), "javascript") || !strings.Contains(w.Body.String(), "0BSD") {
		t.Errorf("htmx: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	if w := e.do(call{method: "GET", path: "/static/"}); w.Code != 404 {
		t.Errorf("static directory listing: %d", w.Code)
	}
}

// TestTemplatesFitCSP: no inline script, style or event handler, which the
// Content-Security-Policy would block; htmx may not inject its style.
func TestTemplatesFitCSP(t *testing.T) {
	inline := regexp.MustCompile(`(?i)<script(?:\s[^>]*)?>\s*[^<\s]|<style|\sstyle=|\son[a-z]+=|javascript:`)
	err := fs.WalkDir(content, "templates", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := fs.ReadFile(content, p)
		if m := inline.Find(b); m != nil {
			t.Errorf("%s: %q", p, m)
		}
		for _, s := range regexp.MustCompile(`<script[^>]*>`).FindAll(b, -1) {
			if !bytes.Contains(s, []byte(`src="/static/`)) {
				t.Errorf("%s: script not from /static: %s", p, s)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	body := newEnv(t, false).do(call{method: "GET", path: "/login"}).Body.String()
	if !strings.Contains(body, `<meta name="htmx-config" content='{"includeIndicatorStyles":false`) {
		t.Errorf("htmx config missing:\n%s", body)
	}
}

// TestTokenSecretShownOnce: a new token's secret is on the answer to its
// creation and on no other page.
func TestTokenSecretShownOnce(t *testing.T) {
	e := newEnv(t, false)
	w := e.as("admin", call{method: "POST", path: "/tokens", form: url.Values{"name": {"ci"}, "role": {"viewer"}}})
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), tokenSentinel) || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("create: %d, secret shown %v, cache %q", w.Code, strings.Contains(w.Body.String(), tokenSentinel), w.Header().Get("Cache-Control"))
	}
	if w := e.as("admin", call{method: "GET", path: "/users"}); strings.Contains(w.Body.String(), tokenSentinel) {
		t.Fatal("the token secret is shown again")
	}
	if w := e.as("admin", call{method: "POST", path: "/tokens", form: url.Values{"name": {"ci"}, "ttl": {"soon"}}}); w.Code != http.StatusBadRequest {
		t.Fatalf("bad lifetime: %d", w.Code)
	}
}

// TestIrreversibleActionsGuarded (issue 14): Enter in an incident's note
// does not confirm the compromise (the form's default button is disabled),
// Confirm and "Release selected" ask first, and a hold with the sender's
// password has no primary Release.
func TestIrreversibleActionsGuarded(t *testing.T) {
	e := newEnv(t, false)
	body := e.as("admin", call{method: "GET", path: "/incidents/7"}).Body.String()
	form := body[strings.Index(body, `action="/incidents/7/confirm"`):]
	first := form[strings.Index(form, "<button"):]
	first = first[:strings.Index(first, ">")]
	if !strings.Contains(first, "disabled") {
		t.Errorf("the confirm form's first (default) button is not disabled: %s", first)
	}
	if !strings.Contains(form, `data-confirm="Confirm the compromise of alice@example.org?`) {
		t.Error("Confirm does not ask first")
	}
	list := e.as("admin", call{method: "GET", path: "/quarantine"}).Body.String()
	if !strings.Contains(list, `value="release" data-confirm=`) {
		t.Error("Release selected does not ask first")
	}
	e.m.mu.Lock()
	e.m.holds[1].Reasons = []string{"password-leak"}
	e.m.mu.Unlock()
	hold := e.as("admin", call{method: "GET", path: "/quarantine/1"}).Body.String()
	if strings.Contains(hold, `class="primary">Release`) || !strings.Contains(hold, "Release (contains a password)") {
		t.Error("a hold with the sender's password offers Release as the primary action")
	}
}

// TestHoldRecipientsCollapsed (issue 14): a spam run's page does not list
// sixty recipients before the buttons: more than five fold into a
// <details>, a few stay listed.
func TestHoldRecipientsCollapsed(t *testing.T) {
	e := newEnv(t, false)
	var many []string
	for i := range 60 {
		many = append(many, fmt.Sprintf("r%02d@dest.example", i))
	}
	e.m.mu.Lock()
	e.m.holds[1].Recipients, e.m.holds[1].RecipientCount = many, 60
	e.m.mu.Unlock()
	hold := e.as("admin", call{method: "GET", path: "/quarantine/1"}).Body.String()
	d := strings.Index(hold, `<details class="recipients"><summary>show all 60</summary>`)
	if d < 0 || strings.Index(hold, "r59@dest.example") < d {
		t.Errorf("60 recipients not folded:\n%s", hold)
	}
	e.m.mu.Lock()
	e.m.holds[1].Recipients, e.m.holds[1].RecipientCount = many[:3], 3
	e.m.mu.Unlock()
	hold = e.as("admin", call{method: "GET", path: "/quarantine/1"}).Body.String()
	if strings.Contains(hold, `<details class="recipients">`) || !strings.Contains(hold, "<li>r02@dest.example</li>") {
		t.Errorf("3 recipients folded or missing")
	}
}

// TestBulkAll (issue 14): the quarantine page counts every match across
// pages and offers "delete/release all N" for the held ones, carrying the
// filter, the count and the newest ID it showed; the account page offers
// the same for everything the account has held; the buttons ask first,
// naming the count; a stale count is refused and changes nothing; roles
// that may not act see no form.
func TestBulkAll(t *testing.T) {
	e := newEnv(t, false)
	list := e.as("admin", call{method: "GET", path: "/quarantine?limit=1"}).Body.String()
	for _, want := range []string{"1–2 of 2 messages held matching this filter.", `action="/quarantine/all"`,
		`<input type="hidden" name="through" value="2"><input type="hidden" name="expect" value="2">`,
		`data-confirm="Delete all 2 held messages (no filter: every held message) from the Postfix queue?`, ">Release all 2</button>"} {
		if !strings.Contains(list, want) {
			t.Errorf("quarantine page lacks %q", want)
		}
	}
	acct := e.as("admin", call{method: "GET", path: "/accounts/alice@example.org"}).Body.String()
	for _, want := range []string{"2 messages held now", `<input type="hidden" name="account" value="alice@example.org">`,
		`data-confirm="Delete all 2 held messages of alice@example.org from the Postfix queue?`, `name="back" value="/accounts/alice@example.org"`} {
		if !strings.Contains(acct, want) {
			t.Errorf("account page lacks %q", want)
		}
	}
	for _, role := range []string{"helpdesk", "viewer"} {
		if body := e.as(role, call{method: "GET", path: "/quarantine"}).Body.String(); strings.Contains(body, `action="/quarantine/all"`) {
			t.Errorf("%s sees the act-on-all form", role)
		}
	}
	before := e.m.changes.Load()
	w := e.as("admin", call{method: "POST", path: "/quarantine/all", form: url.Values{"action": {"delete"}, "account": {"alice@example.org"}, "through": {"2"}, "expect": {"1"}}})
	if w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), "2 held messages match now, 1 were confirmed") || e.m.changes.Load() != before {
		t.Fatalf("stale count: %d, %d changes\n%s", w.Code, e.m.changes.Load()-before, w.Body.String())
	}
	if w := e.as("admin", call{method: "POST", path: "/quarantine/all", form: url.Values{"action": {"delete"}, "through": {"x"}}}); w.Code != http.StatusBadRequest {
		t.Errorf("no count: %d", w.Code)
	}
	w = e.as("admin", call{method: "POST", path: "/quarantine/all", form: url.Values{"action": {"delete"}, "account": {"alice@example.org"},
		"through": {"2"}, "expect": {"2"}, "since": {"2025-03-04T10:00"}, "back": {"/accounts/alice@example.org"}}})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/accounts/alice@example.org" {
		t.Fatalf("delete all: %d to %q\n%s", w.Code, w.Header().Get("Location"), w.Body.String())
	}
	if b := e.m.lastBulk; b.Action != "delete" || b.Filter.Account != "alice@example.org" || b.Through != 2 || b.Expect != 2 || !b.Filter.Since.Equal(t0.Add(-2*time.Hour)) {
		t.Errorf("request: %+v", b)
	}
	for _, id := range []int64{1, 2} {
		if st := e.m.holds[id].State; st != "deleted" {
			t.Errorf("hold %d is %s", id, st)
		}
	}
	if body := e.as("admin", call{method: "GET", path: "/accounts/alice@example.org"}).Body.String(); !strings.Contains(body, "Nothing held now.") {
		t.Error("the account page still offers held mail")
	}
}

// TestHoldNode (issue 15): in a cluster, a hold's page and the list name
// the node whose Postfix queue has the message; on a single node neither
// says anything of nodes.
func TestHoldNode(t *testing.T) {
	e := newEnv(t, false)
	if hold := e.as("admin", call{method: "GET", path: "/quarantine/1"}).Body.String(); strings.Contains(hold, "<dt>Node</dt>") {
		t.Error("a single node's hold names a node")
	}
	e.m.mu.Lock()
	e.m.holds[1].Node = "mta-a.example.org"
	e.m.mu.Unlock()
	if hold := e.as("admin", call{method: "GET", path: "/quarantine/1"}).Body.String(); !strings.Contains(hold, "<dt>Node</dt><dd>mta-a.example.org") {
		t.Error("the hold's page does not name its node")
	}
	if list := e.as("admin", call{method: "GET", path: "/quarantine"}).Body.String(); !strings.Contains(list, "<small>on mta-a.example.org</small>") {
		t.Error("the list does not name the hold's node")
	}
}

// TestReadOnlyBanner (issue 15): while the records store takes no
// writes, every whole page — the sign-in page and error pages included —
// says the records are read-only, why, and that held mail waits in
// Postfix's hold queue; the footer names the node. Otherwise no banner.
func TestReadOnlyBanner(t *testing.T) {
	e := newEnv(t, false)
	const banner = "Records are read-only: PostgreSQL does not answer."
	pages := []call{{method: "GET", path: "/"}, {method: "GET", path: "/quarantine"}, {method: "GET", path: "/nodes"}, {method: "GET", path: "/quarantine/999"}}
	for _, c := range pages {
		if body := e.as("viewer", c).Body.String(); strings.Contains(body, banner) || strings.Contains(body, `class="banner`) {
			t.Errorf("%s: a banner while the store takes writes", c.path)
		}
	}
	e.m.mu.Lock()
	e.m.status = api.Status{Node: "mta-b.example.org", Records: api.RecordsPostgres, ReadOnly: true}
	e.m.mu.Unlock()
	for _, c := range pages {
		body := e.as("viewer", c).Body.String()
		if !strings.Contains(body, banner) || !strings.Contains(body, "held messages stay in Postfix&#39;s hold queue and are recorded when PostgreSQL is back") {
			t.Errorf("%s: no read-only banner:\n%.1500s", c.path, body)
		}
		if !strings.Contains(body, "· node mta-b.example.org ·") {
			t.Errorf("%s: the footer does not name the node", c.path)
		}
	}
	if body := e.do(call{method: "GET", path: "/login"}).Body.String(); !strings.Contains(body, banner) {
		t.Error("the sign-in page has no read-only banner")
	}
}

// TestStoreDownExplained: a page whose records cannot be read while the
// store does not answer is a 503 that says so, not a 500 with the
// driver's error.
func TestStoreDownExplained(t *testing.T) {
	e := newEnv(t, false)
	e.m.mu.Lock()
	e.m.storeDown = true
	e.m.status = api.Status{Records: api.RecordsPostgres, ReadOnly: true}
	e.m.mu.Unlock()
	w := e.as("admin", call{method: "GET", path: "/"})
	if body := w.Body.String(); w.Code != http.StatusServiceUnavailable || !strings.Contains(body, "PostgreSQL does not answer") ||
		strings.Contains(body, "connection refused") || !strings.Contains(body, `class="banner`) {
		t.Fatalf("%d\n%s", w.Code, body)
	}
}

// TestSessionStoreDown: a session that cannot be checked while the
// records store does not answer is a 503 that says so — not a redirect
// to sign in, and its cookie is kept for when the store answers.
func TestSessionStoreDown(t *testing.T) {
	e := newEnv(t, false)
	p := e.a.session("admin")
	e.m.mu.Lock()
	e.m.storeDown = true
	e.m.mu.Unlock()
	e.a.mu.Lock()
	e.a.storeDown = true
	e.a.mu.Unlock()
	for _, c := range []call{{method: "GET", path: "/quarantine"}, {method: "POST", path: "/quarantine/1/release", csrf: p.CSRF}} {
		c.session = &p
		w := e.do(c)
		if body := w.Body.String(); w.Code != http.StatusServiceUnavailable || !strings.Contains(body, "Your session cannot be checked now: PostgreSQL does not answer") ||
			strings.Contains(body, "connection refused") || w.Header().Get("Set-Cookie") != "" {
			t.Errorf("%s %s: %d %q\n%s", c.method, c.path, w.Code, w.Header().Get("Set-Cookie"), body)
		}
	}
	if e.m.changes.Load() != 0 {
		t.Error("a change went through")
	}
}

// TestNodeNotAnswering: releasing a message held on a node that is down
// is a 503 saying the node has not answered (it was a 500 "something
// went wrong"); the hold stays held.
func TestNodeNotAnswering(t *testing.T) {
	e := newEnv(t, false)
	e.m.mu.Lock()
	e.m.holds[1].Node, e.m.nodeDown = "mta-a.example.org", "mta-a.example.org"
	e.m.mu.Unlock()
	w := e.as("admin", call{method: "POST", path: "/quarantine/1/release"})
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "node mta-a.example.org has not carried out command 17") {
		t.Fatalf("%d\n%s", w.Code, w.Body.String())
	}
	w = e.as("admin", call{method: "POST", path: "/quarantine/bulk", form: url.Values{"action": {"delete"}, "id": {"1", "2"}}})
	if body := w.Body.String(); w.Code != http.StatusOK || !strings.Contains(body, "has not answered") || strings.Contains(body, "internal error") {
		t.Fatalf("bulk: %d\n%s", w.Code, body)
	}
	if h, _ := e.m.GetHold(t.Context(), 1); h.State != store.HoldHeld {
		t.Fatalf("hold 1 is %s", h.State)
	}
}

// TestNodesPage (issue 15): the nodes page names every node with its
// state, last heartbeat and waiting commands, this node marked; a node
// alone says why; the dashboard counts nodes down only in a cluster.
func TestNodesPage(t *testing.T) {
	e := newEnv(t, false)
	body := e.as("helpdesk", call{method: "GET", path: "/nodes"}).Body.String()
	for _, want := range []string{"mx1.example.org <span class=\"muted\">(this node)</span>", `<span class="state state-up">up</span>`, "knows no other node", "2025-03-04 12:00:00Z"} {
		if !strings.Contains(body, want) {
			t.Errorf("alone: no %q in\n%s", want, body)
		}
	}
	if dash := e.as("admin", call{method: "GET", path: "/"}).Body.String(); strings.Contains(dash, "nodes down") {
		t.Error("the dashboard of a node alone counts nodes")
	}
	e.m.mu.Lock()
	e.m.nodes = &api.NodeList{Shared: true, DownAfterSeconds: 15, Nodes: []api.Node{
		{Name: "mta-a.example.org", State: api.NodeDown, SeenAt: t0.Add(-time.Minute), Version: "1.4.0", PendingCommands: 3},
		{Name: "mta-b.example.org", State: api.NodeUp, SeenAt: t0, Version: "1.4.1", Self: true}}}
	e.m.mu.Unlock()
	body = e.as("viewer", call{method: "GET", path: "/nodes"}).Body.String()
	row := regexp.MustCompile(`(?s)<tr><td>mta-a\.example\.org</td>.*?</tr>`).FindString(body)
	for _, want := range []string{`<span class="state state-down">down</span>`, "2025-03-04 11:59:00Z", "1.4.0", `<td class="num">3</td>`} {
		if !strings.Contains(row, want) {
			t.Errorf("node A's row lacks %q: %q", want, row)
		}
	}
	if !strings.Contains(body, "mta-b.example.org <span class=\"muted\">(this node)</span>") || !strings.Contains(body, "none for 15 seconds") {
		t.Errorf("cluster:\n%s", body)
	}
	if dash := e.as("admin", call{method: "GET", path: "/"}).Body.String(); !strings.Contains(dash, `<a class="card alert" href="/nodes"><span class="num">1</span> of 2 nodes down</a>`) {
		t.Errorf("dashboard:\n%s", dash)
	}
	// Retiring: offered to an admin for a node that is down and not this
	// one; carried out with what it took said.
	if strings.Contains(body, "/retire") {
		t.Error("a viewer is offered to retire a node")
	}
	body = e.as("admin", call{method: "GET", path: "/nodes"}).Body.String()
	if n := strings.Count(body, `action="/nodes/`); n != 1 || !strings.Contains(body, `action="/nodes/mta-a.example.org/retire"`) {
		t.Errorf("admin's retire buttons (%d):\n%s", n, body)
	}
	w := e.as("admin", call{method: "POST", path: "/nodes/mta-a.example.org/retire"})
	if w.Code != http.StatusSeeOther && w.Code != http.StatusOK {
		t.Fatalf("retire: %d\n%s", w.Code, w.Body.String())
	}
	e.m.mu.Lock()
	retired := e.m.retired
	e.m.mu.Unlock()
	if len(retired) != 1 || retired[0] != "mta-a.example.org" {
		t.Fatalf("retired %v", retired)
	}
}
