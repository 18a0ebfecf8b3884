package daemon

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/auth"
	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/ops"
	"github.com/mailbrake/mailbrake/internal/quarantine"
	"github.com/mailbrake/mailbrake/internal/store"
	"github.com/mailbrake/mailbrake/internal/store/sqlite"
)

func TestAPIRoutesGated(t *testing.T) {
	for _, r := range api.Routes() {
		if r.Perm == "" {
			t.Errorf("route %s has no permission", r.Pattern())
		}
	}
}

// TestAPIAuthTable: every API route refuses unauthenticated requests,
// every state change made with a session refuses a missing or wrong CSRF
// token, and each role gets exactly its permissions.
func TestAPIAuthTable(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	states, _ := ops.NewStates(ctx, st)
	as := auth.New(st, auth.Options{})
	const secret = "admin-Secret-Sentinel-42"
	cfg := config.Default()
	qs := &quarantine.Service{Store: st, Queue: &quarantine.Postfix{Postsuper: "/nonexistent/postsuper", Postqueue: "/nonexistent/postqueue"}, Log: slog.New(slog.DiscardHandler)}
	svc := &ops.Service{Quarantine: qs, Store: st, Audit: st, Accounts: st, States: states, Log: slog.New(slog.DiscardHandler), TrustStore: st, Users: st,
		Tokens: as, Sessions: as, ConfigText: func() string { return redactedConfig(cfg) }}
	sessions := map[auth.Role]*auth.Principal{}
	for _, role := range auth.Roles {
		name := string(role) + "-user"
		if _, err := svc.PutUser(api.WithActor(ctx, api.Actor{Name: "test"}), api.PutUserRequest{Name: name, Role: string(role), Password: secret}); err != nil {
			t.Fatal(err)
		}
		p, err := as.Login(ctx, name, secret, "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		sessions[role] = p
	}
	_, viewerToken, err := as.CreateToken(ctx, "monitor", auth.RoleViewer, time.Hour, "test")
	if err != nil {
		t.Fatal(err)
	}
	h := api.Gate(svc, as, slog.New(slog.DiscardHandler))
	path := func(route string) (string, string) {
		m, p, _ := strings.Cut(route, " ")
		p = strings.NewReplacer("{id}", "1", "{name}", "u@example.edu", "{change}", "confirm").Replace(p)
		return m, "/api" + p
	}
	do := func(method, target string, set func(*http.Request)) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, target, strings.NewReader("{}"))
		r.Header.Set("Content-Type", "application/json")
		if set != nil {
			set(r)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if strings.Contains(w.Body.String(), secret) {
			t.Fatalf("%s %s: the password appears in the answer", method, target)
		}
		return w
	}
	withSession := func(p *auth.Principal, csrf string) func(*http.Request) {
		return func(r *http.Request) {
			r.AddCookie(&http.Cookie{Name: auth.SessionCookie, Value: p.SessionID})
			if csrf != "" {
				r.Header.Set(auth.CSRFHeader, csrf)
			}
		}
	}
	for _, rt := range api.Routes() {
		route := rt.Pattern()
		method, target := path(route)
		perm := rt.Perm
		if w := do(method, target, nil); w.Code != http.StatusUnauthorized {
			t.Errorf("%s unauthenticated: %d", route, w.Code)
		}
		if w := do(method, target, func(r *http.Request) { r.Header.Set("Authorization", "Bearer mbk_forged_secret") }); w.Code != http.StatusUnauthorized {
			t.Errorf("%s forged token: %d", route, w.Code)
		}
		if method != http.MethodGet {
			for _, bad := range []string{"", "wrong-token"} {
				if w := do(method, target, withSession(sessions[auth.RoleAdmin], bad)); w.Code != http.StatusForbidden {
					t.Errorf("%s with CSRF %q: %d", route, bad, w.Code)
				}
			}
		}
		for _, role := range auth.Roles {
			p := sessions[role]
			w := do(method, target, withSession(p, p.CSRF))
			allowed := role.Can(perm)
			if got := w.Code != http.StatusForbidden && w.Code != http.StatusUnauthorized; got != allowed {
				t.Errorf("%s as %s: %d (allowed %v): %s", route, role, w.Code, allowed, w.Body.String())
			}
		}
		// API tokens need no CSRF token.
		w := do(method, target, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+viewerToken) })
		if allowed := auth.RoleViewer.Can(perm); (w.Code != http.StatusForbidden && w.Code != http.StatusUnauthorized) != allowed {
			t.Errorf("%s with a viewer token: %d", route, w.Code)
		}
	}
	// Unknown API paths are 404, not open.
	if w := do("GET", "/api/v1/nothing-here", withSession(sessions[auth.RoleAdmin], "")); w.Code != http.StatusNotFound {
		t.Errorf("unknown route: %d", w.Code)
	}
}

// TestHelpdeskSeesNoContent: the API hides headers and previews from the
// helpdesk role.
func TestHelpdeskSeesNoContent(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	stored, err := st.PutHold(ctx, &store.Hold{QueueID: "Q1", Account: "u@example.edu", Recipients: []string{"x@y"}, Reasons: []string{"bulk-from-scripted-client"},
		Subject: "CONTENT-SENTINEL in the subject", Headers: "Subject: CONTENT-SENTINEL\n", Preview: "my secret CONTENT-SENTINEL", HeldAt: time.Now(), State: store.HoldHeld})
	if err != nil {
		t.Fatal(err)
	}
	as := auth.New(st, auth.Options{})
	svc := &ops.Service{Store: st, Audit: st, Accounts: st, Log: slog.New(slog.DiscardHandler)}
	h := api.Gate(svc, as, slog.New(slog.DiscardHandler))
	for _, role := range []auth.Role{auth.RoleHelpdesk, auth.RoleViewer} {
		_, tok, _ := as.CreateToken(ctx, string(role), role, time.Hour, "test")
		r := httptest.NewRequest("GET", "/api/v1/holds/"+itoa(stored.ID), nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		has := strings.Contains(w.Body.String(), "CONTENT-SENTINEL")
		if w.Code != 200 || has != role.Can(auth.PermHoldsContent) {
			t.Errorf("%s: %d, content shown %v", role, w.Code, has)
		}
		// The list and a search by the subject's words, and the account's
		// page, likewise (the subject is content).
		for _, path := range []string{"/api/v1/holds", "/api/v1/holds?q=SENTINEL", "/api/v1/accounts/u@example.edu"} {
			r := httptest.NewRequest("GET", path, nil)
			r.Header.Set("Authorization", "Bearer "+tok)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if has := strings.Contains(w.Body.String(), "CONTENT-SENTINEL"); w.Code != 200 || has != role.Can(auth.PermHoldsContent) {
				t.Errorf("%s %s: %d, subject shown %v", role, path, w.Code, has)
			}
			if path == "/api/v1/holds?q=SENTINEL" && !role.Can(auth.PermHoldsContent) && strings.Contains(w.Body.String(), `"queue_id":"Q1"`) {
				t.Errorf("%s: a search by the subject found the hold", role)
			}
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestRedactedConfigHasNoSecrets: the configuration page and API show
// paths of secret files, never their contents, and hide a secret put
// inline by mistake.
func TestRedactedConfigHasNoSecrets(t *testing.T) {
	cfg := config.Default()
	pwFile := filepath.Join(t.TempDir(), "zimbra.pw")
	const zimbraSecret = "Zimbra-Admin-Secret-77"
	if err := os.WriteFile(pwFile, []byte(zimbraSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Response.Zimbra = config.ZimbraConfig{URL: "https://mail.example.edu:7071/service/admin/soap", AdminUser: "admin@example.edu", AdminPasswordFile: pwFile}
	out := redactedConfig(cfg)
	if strings.Contains(out, zimbraSecret) || !strings.Contains(out, pwFile) || !strings.Contains(out, "admin@example.edu") {
		t.Fatalf("redacted config:\n%s", out)
	}
	var n struct {
		Password string `yaml:"password"`
		APIKey   string `yaml:"api_key"`
		Nested   struct {
			Secret string `yaml:"client_secret"`
		} `yaml:"nested"`
	}
	n.Password, n.APIKey, n.Nested.Secret = "p1-inline", "k1-inline", "s1-inline"
	var node yaml.Node
	if err := node.Encode(n); err != nil {
		t.Fatal(err)
	}
	redactNode(&node)
	b, _ := yaml.Marshal(&node)
	// A webhook URL with credentials in it (issue 13): userinfo and
	// secret-looking query parameters hidden, the rest shown.
	var hook struct {
		URL   string `yaml:"url"`
		Plain string `yaml:"plain"`
	}
	hook.URL = "https://hookuser:hookpass-inline@hooks.example.net/in?team=ops&token=tok-inline&sig=sig-inline"
	// A PostgreSQL key=value string: its client key's passphrase.
	var dsn struct {
		URL string `yaml:"url"`
	}
	dsn.URL = "host=db.example.net user=mailbrake sslkey=/etc/mailbrake/pg.key sslpassword='key pass-inline' sslmode=verify-full"
	var dn yaml.Node
	if err := dn.Encode(dsn); err != nil {
		t.Fatal(err)
	}
	redactNode(&dn)
	if db, _ := yaml.Marshal(&dn); strings.Contains(string(db), "pass-inline") || !strings.Contains(string(db), "sslmode=verify-full") || !strings.Contains(string(db), "sslpassword=(redacted)") {
		t.Fatalf("key=value connection string:\n%s", db)
	}
	hook.Plain = "https://hooks.example.net/in?team=ops"
	var hn yaml.Node
	if err := hn.Encode(hook); err != nil {
		t.Fatal(err)
	}
	redactNode(&hn)
	hb, _ := yaml.Marshal(&hn)
	for _, s := range []string{"hookuser", "hookpass-inline", "tok-inline", "sig-inline"} {
		if strings.Contains(string(hb), s) {
			t.Fatalf("URL credential %s not redacted:\n%s", s, hb)
		}
	}
	if !strings.Contains(string(hb), "hooks.example.net/in") || !strings.Contains(string(hb), "team=ops") || !strings.Contains(string(hb), "plain: https://hooks.example.net/in?team=ops") {
		t.Fatalf("redaction hid more than credentials:\n%s", hb)
	}
	for _, s := range []string{"p1-inline", "k1-inline", "s1-inline"} {
		if strings.Contains(string(b), s) {
			t.Fatalf("inline secret %s not redacted:\n%s", s, b)
		}
	}
	// notify.webhook.url: a Slack-style hook carries its token in the
	// path; the view names the host only, as the notifier's logs do,
	// while other URLs (the Zimbra endpoint) keep their path.
	cfg.Notify.Webhook.URL = "https://hooks.slack.example/services/T0001/B0002/path-secret-inline"
	out = redactedConfig(cfg)
	if strings.Contains(out, "path-secret-inline") || strings.Contains(out, "T0001") || !strings.Contains(out, "url: https://hooks.slack.example/…") ||
		!strings.Contains(out, "https://mail.example.edu:7071/service/admin/soap") {
		t.Fatalf("webhook URL in the config view:\n%s", out)
	}
}

// countingReader counts what is read of a request body.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// TestAPIBodyBounded: a session's state change with a 20 MiB multipart
// upload and no CSRF token is refused having read at most api.MaxBody of
// it (issue 13: the CSRF check parsed whole uploads).
func TestAPIBodyBounded(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	hash, _ := auth.HashPassword("correct horse battery")
	if err := st.PutUser(ctx, store.User{Name: "v", Role: string(auth.RoleViewer), Hash: hash, Created: time.Now(), Updated: time.Now()}); err != nil {
		t.Fatal(err)
	}
	as := auth.New(st, auth.Options{})
	p, err := as.Login(ctx, "v", "correct horse battery", "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	svc := &ops.Service{Store: st, Audit: st, Accounts: st, Log: slog.New(slog.DiscardHandler)}
	h := api.Gate(svc, as, slog.New(slog.DiscardHandler))
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("upload", "big.bin")
	fw.Write(bytes.Repeat([]byte("A"), 20<<20))
	mw.Close()
	cr := &countingReader{r: &body}
	r := httptest.NewRequest("POST", "/api/v1/holds/1/release", cr)
	r.Header.Set("Content-Type", mw.FormDataContentType())
	r.AddCookie(&http.Cookie{Name: auth.SessionCookie, Value: p.SessionID})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusForbidden {
		t.Errorf("status %d, want 403: %s", w.Code, w.Body.String())
	}
	if cr.n > api.MaxBody+64<<10 {
		t.Errorf("read %d bytes of the upload, bound %d", cr.n, api.MaxBody)
	}
}
