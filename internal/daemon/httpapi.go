package daemon

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/auth"
	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/engine"
	"github.com/mailbrake/mailbrake/internal/ops"
)

// apiPermissions is the permission each REST API route needs. Every route
// of api.Routes must be here (TestAPIRoutesGated).
var apiPermissions = map[string]auth.Permission{
	"GET /v1/status":                        auth.PermHoldsRead,
	"GET /v1/holds":                         auth.PermHoldsRead,
	"GET /v1/holds/{id}":                    auth.PermHoldsRead, // content only with holds:content
	"POST /v1/holds/{id}/release":           auth.PermHoldsAct,
	"POST /v1/holds/{id}/delete":            auth.PermHoldsAct,
	"POST /v1/holds/{id}/spam":              auth.PermHoldsAct,
	"POST /v1/holds/{id}/release-and-trust": auth.PermHoldsAct,
	"POST /v1/queue/sync":                   auth.PermHoldsAct,
	"GET /v1/trust":                         auth.PermHoldsRead,
	"DELETE /v1/trust/{id}":                 auth.PermHoldsAct,
	"GET /v1/audit":                         auth.PermAuditRead,
	"GET /v1/accounts":                      auth.PermAccountsRead,
	"GET /v1/accounts/{name}":               auth.PermAccountsRead,
	"GET /v1/accounts/{name}/timeline":      auth.PermAccountsRead,
	"POST /v1/accounts/{name}/state":        auth.PermAccountsAct,
	"POST /v1/accounts/{name}/unlock":       auth.PermAccountsUnlock,
	"GET /v1/incidents":                     auth.PermIncidentsRead,
	"GET /v1/incidents/{id}":                auth.PermIncidentsRead,
	"POST /v1/incidents":                    auth.PermIncidentsAct,
	"POST /v1/incidents/{id}/{change}":      auth.PermIncidentsAct,
	"GET /v1/dashboard":                     auth.PermHoldsRead,
	"GET /v1/config":                        auth.PermConfigRead,
	"GET /v1/users":                         auth.PermUsersAdmin,
	"PUT /v1/users/{name}":                  auth.PermUsersAdmin,
	"DELETE /v1/users/{name}":               auth.PermUsersAdmin,
	"GET /v1/tokens":                        auth.PermUsersAdmin,
	"POST /v1/tokens":                       auth.PermUsersAdmin,
	"DELETE /v1/tokens/{id}":                auth.PermUsersAdmin,
}

// Authenticator resolves the principal of a network request.
type Authenticator interface {
	Authenticate(r *http.Request) (*auth.Principal, error)
}

// apiGate serves the REST API under /api: every request is authenticated
// (session cookie or API token), state changes made with a session carry
// the CSRF token, and each route needs its permission. The actor in the
// audit log is "web:NAME" for sessions and "token:NAME" for tokens.
func apiGate(m api.Methods, a Authenticator, log *slog.Logger) http.Handler {
	inner := api.Handler(m, log)
	mux := http.NewServeMux()
	for _, route := range api.Routes() {
		perm, ok := apiPermissions[route]
		if !ok {
			continue // refused below: unknown routes are 404, never open
		}
		method, path, _ := strings.Cut(route, " ")
		mux.Handle(method+" /api"+path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, err := a.Authenticate(r)
			if err != nil {
				apiError(w, http.StatusUnauthorized, "authentication required (session cookie or Authorization: Bearer token)")
				return
			}
			if err := auth.CheckCSRF(r, p); err != nil {
				apiError(w, http.StatusForbidden, err.Error())
				return
			}
			if !p.Can(perm) {
				apiError(w, http.StatusForbidden, "the "+string(p.Role)+" role may not do this ("+string(perm)+")")
				return
			}
			name := p.Name
			if p.Via == "session" {
				name = "web:" + p.Name
			}
			ctx := api.WithActor(auth.WithPrincipal(r.Context(), p), api.Actor{Name: name, NoContent: !p.Can(auth.PermHoldsContent)})
			r2 := r.WithContext(ctx)
			r2.URL.Path = strings.TrimPrefix(r.URL.Path, "/api")
			r2.URL.RawPath = ""
			inner.ServeHTTP(w, r2)
		}))
	}
	return mux
}

func apiError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(struct {
		Error string `json:"error"`
	}{msg})
}

// redactedConfig renders the effective configuration as YAML with every
// value whose key names a secret replaced. Secrets are read from files,
// so only file paths are in the configuration; the redaction guards
// against a secret put inline by mistake.
func redactedConfig(c *config.Config) string {
	var n yaml.Node
	if err := n.Encode(c); err != nil {
		return "# configuration could not be rendered: " + err.Error()
	}
	redactNode(&n)
	b, err := yaml.Marshal(&n)
	if err != nil {
		return "# configuration could not be rendered: " + err.Error()
	}
	return string(b)
}

func redactNode(n *yaml.Node) {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i].Value, n.Content[i+1]
			if !strings.HasSuffix(k, "_file") && (strings.Contains(k, "password") || strings.Contains(k, "secret") || strings.HasSuffix(k, "_key") || k == "key" || k == "token") && v.Kind == yaml.ScalarNode && v.Value != "" {
				v.Value = "(redacted)"
				v.Tag = "!!str"
			}
			redactNode(v)
		}
		return
	}
	for _, c := range n.Content {
		redactNode(c)
	}
}

// loopbackOnly reports whether addr listens on loopback only.
func loopbackOnly(addr net.Addr) bool {
	ta, ok := addr.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// volumeCounter counts outbound messages for the dashboard. It is an
// engine Learner, so a message decided on both paths is counted once.
type volumeCounter struct{ v *ops.Volume }

func (volumeCounter) Learns() bool { return true }

func (volumeCounter) Inbound(context.Context, *engine.Submission) []engine.Finding { return nil }

func (c volumeCounter) Outbound(_ context.Context, sub *engine.Submission) []engine.Finding {
	c.v.Add(sub.Time, sub.RecipientCount)
	return nil
}
