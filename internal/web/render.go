package web

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/auth"
)

// page is what every template gets: the layout's fields and the page's Data.
type page struct {
	Title   string
	Active  string // the nav section
	P       *auth.Principal
	CSRF    string
	Nav     []navItem
	Flash   *flash
	Version string
	// Status is the daemon's (this node's name, whether the records are
	// read-only: the banner); nil when it could not be read.
	Status *api.Status
	Data   any
}

type navItem struct {
	Key, Href, Label string
}

type flash struct {
	Error bool
	Text  string
}

// Can reports whether the signed-in principal has the permission named
// perm; an unknown name is an error, so a typo in a template fails its test.
func (pg *page) Can(perm string) (bool, error) {
	for _, p := range auth.Permissions {
		if string(p) == perm {
			return pg.P.Can(p), nil
		}
	}
	return false, fmt.Errorf("unknown permission %q", perm)
}

// nav lists the sections; each shows only to roles that may read it.
var nav = []struct {
	navItem
	perms []auth.Permission
}{
	{navItem{"dashboard", "/", "Dashboard"}, dashboardPerms},
	{navItem{"quarantine", "/quarantine", "Quarantine"}, perms(auth.PermHoldsRead)},
	{navItem{"accounts", "/accounts", "Accounts"}, perms(auth.PermAccountsRead)},
	{navItem{"incidents", "/incidents", "Incidents"}, perms(auth.PermIncidentsRead)},
	{navItem{"trust", "/trust", "Trusted"}, perms(auth.PermHoldsRead)},
	{navItem{"nodes", "/nodes", "Nodes"}, perms(auth.PermHoldsRead)},
	{navItem{"audit", "/audit", "Audit log"}, perms(auth.PermAuditRead)},
	{navItem{"config", "/config", "Configuration"}, perms(auth.PermConfigRead)},
	{navItem{"users", "/users", "Users"}, perms(auth.PermUsersAdmin)},
}

// newPage starts a page for the request's principal and takes the flash
// message set by the previous action.
func (s *Server) newPage(w http.ResponseWriter, r *http.Request, title, active string) *page {
	pg := s.basePage(r, title, active)
	pg.Flash = s.takeFlash(w, r)
	// Every whole page says when the records are read-only; the flag is
	// the daemon's last probe of the store, a few seconds old at most.
	if st, err := s.o.Methods.Status(r.Context()); err == nil {
		pg.Status = st
	}
	return pg
}

// basePage starts a page, or the context of a fragment, leaving the flash
// message for the next whole page.
func (s *Server) basePage(r *http.Request, title, active string) *page {
	pg := &page{Title: title, Active: active, Version: s.o.Version}
	if p := auth.FromContext(r.Context()); p != nil {
		pg.P, pg.CSRF = p, p.CSRF
		for _, n := range nav {
			if canAny(p, n.perms) {
				pg.Nav = append(pg.Nav, n.navItem)
			}
		}
	}
	return pg
}

const flashCookie = "mailbrake_flash"

// maxFlash bounds a flash message to what fits a cookie comfortably.
const maxFlash = 1500

// setFlash shows text on the next page rendered (after the redirect).
func (s *Server) setFlash(w http.ResponseWriter, isErr bool, text string) {
	if len(text) > maxFlash {
		text = text[:maxFlash] + "…"
	}
	v := "o" + text
	if isErr {
		v = "e" + text
	}
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: base64.RawURLEncoding.EncodeToString([]byte(v)),
		Path: "/", MaxAge: 60, HttpOnly: true, Secure: s.o.Secure, SameSite: http.SameSiteStrictMode})
}

func (s *Server) takeFlash(w http.ResponseWriter, r *http.Request) *flash {
	c, err := r.Cookie(flashCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.o.Secure, SameSite: http.SameSiteStrictMode})
	b, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil || len(b) < 2 {
		return nil
	}
	return &flash{Error: b[0] == 'e', Text: string(b[1:])}
}

// redirect ends a successful action: a flash message and 303 to where the
// result shows.
func (s *Server) redirect(w http.ResponseWriter, r *http.Request, to, msg string) {
	if msg != "" {
		s.setFlash(w, false, msg)
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

var funcs = template.FuncMap{
	"time":       formatTime,
	"size":       formatSize,
	"pathEscape": url.PathEscape,
	"targetURL":  targetURL,
	"csrfField":  func() string { return auth.CSRFField },
	"f":          func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) },
	"plus":       func(a, b float64) float64 { return a + b },
	"minus":      func(a, b float64) float64 { return a - b },
	"letThrough": letThrough,
	"hasReason":  func(reasons []string, r string) bool { return slices.Contains(reasons, r) },
}

// letThrough is, per reason of a hold, what would have let the message
// through (api.LetThrough); a site rule's reason says so.
func letThrough(reasons []string) [][2]string {
	out := make([][2]string, 0, len(reasons))
	for _, r := range reasons {
		t := api.LetThrough[r]
		if t == "" {
			t = "The site's rule of this name not matching (rules: in the configuration)."
		}
		out = append(out, [2]string{r, t})
	}
	return out
}

// targetURL links an audit target ("hold:12", "account:NAME",
// "incident:7") to its page; "" for other targets.
func targetURL(target string) string {
	kind, id, _ := strings.Cut(target, ":")
	switch kind {
	case "hold", "incident":
		if n, err := strconv.ParseInt(id, 10, 64); err == nil && n > 0 {
			return map[string]string{"hold": "/quarantine/", "incident": "/incidents/"}[kind] + strconv.FormatInt(n, 10)
		}
	case "account":
		if id != "" {
			return "/accounts/" + url.PathEscape(id)
		}
	}
	return ""
}

// timeLayout renders every time in UTC, ISO-like and sortable.
const timeLayout = "2006-01-02 15:04:05Z"

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format(timeLayout)
}

func formatSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// parsePages parses each page template together with the layout.
func parsePages() (map[string]*template.Template, error) {
	base, err := template.New("").Funcs(funcs).ParseFS(content, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("web: parsing the layout: %w", err)
	}
	files, err := fs.Glob(content, "templates/pages/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, f := range files {
		t, err := base.Clone()
		if err == nil {
			t, err = t.ParseFS(content, f)
		}
		if err != nil {
			return nil, fmt.Errorf("web: parsing %s: %w", f, err)
		}
		pages[strings.TrimSuffix(path.Base(f), ".html")] = t
	}
	return pages, nil
}

// render writes a whole page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, code int, name string, pg *page) {
	s.execute(w, r, code, name, "layout", pg)
}

// execute writes one template of a page: "layout" for the whole page, or a
// fragment for htmx.
func (s *Server) execute(w http.ResponseWriter, r *http.Request, code int, name, tmpl string, data any) {
	t := s.pages[name]
	var buf bytes.Buffer
	if t == nil {
		s.log.Error("web: no such page template", "page", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if err := t.ExecuteTemplate(&buf, tmpl, data); err != nil {
		s.log.Error("web: rendering a page", "page", name, "path", r.URL.Path, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

type errorData struct {
	Code    int
	Message string
	Back    string
}

// renderError shows an error page (for htmx, the message in the flash
// area). msg is shown as it is; "" shows the status text.
func (s *Server) renderError(w http.ResponseWriter, r *http.Request, code int, msg string) {
	s.renderErrorBack(w, r, code, msg, "")
}

func (s *Server) renderErrorBack(w http.ResponseWriter, r *http.Request, code int, msg, back string) {
	if msg == "" {
		msg = http.StatusText(code) + "."
		if code == http.StatusInternalServerError {
			msg = "Something went wrong; the server log has the details."
		}
	}
	if r.Header.Get("HX-Request") == "true" {
		pg := s.basePage(r, http.StatusText(code), "")
		w.Header().Set("HX-Retarget", "#flash")
		w.Header().Set("HX-Reswap", "innerHTML")
		pg.Flash = &flash{Error: true, Text: msg}
		s.execute(w, r, code, "error", "flash", pg)
		return
	}
	pg := s.newPage(w, r, http.StatusText(code), "")
	pg.Data = errorData{Code: code, Message: msg, Back: localPath(back)}
	s.render(w, r, code, "error", pg)
}

// fail shows the error of a Methods call: not found 404, a refused change
// 409, a bad request 400 and a node or store that does not answer 503
// with the server's message, anything else 500 (logged, not shown). back
// is where the error page links to.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error, back string) {
	err = s.explain(r, err)
	code, msg := statusOf(err), ""
	if code != http.StatusInternalServerError {
		msg = err.Error()
	} else {
		s.log.Error("web: admin request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	s.renderErrorBack(w, r, code, msg, back)
}

// explain turns the error of a records store that does not answer into
// words (api.Explainer), when Methods can.
func (s *Server) explain(r *http.Request, err error) error {
	if ex, ok := s.o.Methods.(api.Explainer); ok && err != nil {
		return ex.Explain(r.Context(), err)
	}
	return err
}

// statusOf maps an error of Methods to an HTTP status.
func statusOf(err error) int {
	switch {
	case errors.Is(err, api.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, api.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, api.ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, api.ErrBadRequest), errors.Is(err, errBadForm):
		return http.StatusBadRequest
	case errors.Is(err, auth.ErrForbidden):
		return http.StatusForbidden
	}
	return http.StatusInternalServerError
}

// errBadForm marks a form the UI itself refuses (a missing reason).
var errBadForm = errors.New("bad request")
