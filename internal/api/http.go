package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mailbrake/mailbrake/internal/auth"
	"github.com/mailbrake/mailbrake/internal/store"
)

// errorBody is the JSON shape of every error answer.
type errorBody struct {
	Error string `json:"error"`
}

// Route is one REST API route: its method and path (relative to /api),
// the permission it needs, and the handler behind it. Routes is the one
// table the mux (Handler), the permission gate (Gate), the CLI's Client and
// docs/openapi.yaml (TestOpenAPIMatchesRoutes) derive from or are checked
// against.
type Route struct {
	Method, Path string
	Perm         auth.Permission
	serve        func(*handler, http.ResponseWriter, *http.Request)
}

// Pattern is the route as a ServeMux pattern ("GET /v1/holds").
func (r Route) Pattern() string { return r.Method + " " + r.Path }

var routes = []Route{
	{"GET", "/v1/status", auth.PermHoldsRead, (*handler).status},
	{"GET", "/v1/nodes", auth.PermHoldsRead, (*handler).listNodes},
	{"DELETE", "/v1/nodes/{name}", auth.PermUsersAdmin, (*handler).retireNode},
	{"GET", "/v1/holds", auth.PermHoldsRead, (*handler).listHolds},
	{"GET", "/v1/holds/{id}", auth.PermHoldsRead, (*handler).getHold}, // content only with holds:content
	{"POST", "/v1/holds/bulk", auth.PermHoldsAct, (*handler).bulkHolds},
	{"POST", "/v1/holds/{id}/release", auth.PermHoldsAct, (*handler).releaseHold},
	{"POST", "/v1/holds/{id}/delete", auth.PermHoldsAct, (*handler).deleteHold},
	{"POST", "/v1/holds/{id}/spam", auth.PermHoldsAct, (*handler).markSpam},
	{"POST", "/v1/holds/{id}/release-and-trust", auth.PermHoldsAct, (*handler).releaseAndTrust},
	{"POST", "/v1/queue/sync", auth.PermHoldsAct, (*handler).sync},
	{"GET", "/v1/trust", auth.PermHoldsRead, (*handler).listTrust},
	{"DELETE", "/v1/trust/{id}", auth.PermHoldsAct, (*handler).deleteTrust},
	{"GET", "/v1/audit", auth.PermAuditRead, (*handler).audit},
	{"GET", "/v1/accounts", auth.PermAccountsRead, (*handler).listAccounts},
	{"GET", "/v1/accounts/{name}", auth.PermAccountsRead, (*handler).getAccount},
	{"GET", "/v1/accounts/{name}/timeline", auth.PermAccountsRead, (*handler).timeline},
	{"POST", "/v1/accounts/{name}/state", auth.PermAccountsAct, (*handler).setAccountState},
	{"POST", "/v1/accounts/{name}/unlock", auth.PermAccountsUnlock, (*handler).unlockAccount},
	{"GET", "/v1/incidents", auth.PermIncidentsRead, (*handler).listIncidents},
	{"GET", "/v1/incidents/{id}", auth.PermIncidentsRead, (*handler).getIncident},
	{"POST", "/v1/incidents", auth.PermIncidentsAct, (*handler).openIncident},
	{"POST", "/v1/incidents/{id}/{change}", auth.PermIncidentsAct, (*handler).changeIncident},
	{"GET", "/v1/dashboard", auth.PermHoldsRead, (*handler).dashboard},
	{"GET", "/v1/config", auth.PermConfigRead, (*handler).config},
	{"GET", "/v1/users", auth.PermUsersAdmin, (*handler).listUsers},
	{"PUT", "/v1/users/{name}", auth.PermUsersAdmin, (*handler).putUser},
	{"DELETE", "/v1/users/{name}", auth.PermUsersAdmin, (*handler).removeUser},
	{"GET", "/v1/tokens", auth.PermUsersAdmin, (*handler).listTokens},
	{"POST", "/v1/tokens", auth.PermUsersAdmin, (*handler).createToken},
	{"DELETE", "/v1/tokens/{id}", auth.PermUsersAdmin, (*handler).revokeToken},
}

// Routes returns the route table (a copy).
func Routes() []Route { return append([]Route(nil), routes...) }

// Handler serves every route for the admin socket, where access is the
// socket's file mode and the caller's actor is already in the context.
func Handler(m Methods, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	h := &handler{m: m, log: log}
	for _, rt := range routes {
		serve := rt.serve
		mux.HandleFunc(rt.Pattern(), func(w http.ResponseWriter, r *http.Request) { serve(h, w, r) })
	}
	return mux
}

// Authenticator resolves the principal of a network request.
type Authenticator interface {
	Authenticate(r *http.Request) (*auth.Principal, error)
}

// MaxBody bounds a request body on the API: its largest are bulk
// selections of hold IDs.
const MaxBody = 1 << 20

// Gate serves the REST API under /api on the HTTP listener: every request
// is authenticated (session cookie or API token), a state change made with
// a session carries the CSRF token, and each route needs its permission.
// The actor in the audit log is "web:NAME" for sessions and "NAME" (the
// token's name) for tokens.
func Gate(m Methods, a Authenticator, log *slog.Logger) http.Handler {
	inner := Handler(m, log)
	mux := http.NewServeMux()
	for _, rt := range routes {
		perm := rt.Perm
		mux.Handle(rt.Method+" /api"+rt.Path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Bounded before anything reads it (the CSRF check may parse a
			// form): an upload cannot take memory or temporary files.
			r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
			p, err := a.Authenticate(r)
			if err != nil {
				// API tokens and sessions are looked up in the records
				// store: when that does not answer, say so rather than
				// refuse them.
				if ex, ok := m.(Explainer); ok && !errors.Is(err, auth.ErrUnauthenticated) {
					if err := ex.Explain(r.Context(), err); errors.Is(err, ErrUnavailable) {
						what := "the session"
						if r.Header.Get("Authorization") != "" {
							what = "the API token"
						}
						gateError(w, http.StatusServiceUnavailable, "cannot check "+what+": "+err.Error())
						return
					}
				}
				gateError(w, http.StatusUnauthorized, "authentication required (session cookie or Authorization: Bearer token)")
				return
			}
			if err := auth.CheckCSRF(r, p); err != nil {
				gateError(w, http.StatusForbidden, err.Error())
				return
			}
			if !p.Can(perm) {
				gateError(w, http.StatusForbidden, "the "+string(p.Role)+" role may not do this ("+string(perm)+")")
				return
			}
			name := p.Name
			if p.Via == "session" {
				name = "web:" + p.Name
			}
			ctx := WithActor(auth.WithPrincipal(r.Context(), p), Actor{Name: name, NoContent: !p.Can(auth.PermHoldsContent)})
			r2 := r.WithContext(ctx)
			r2.URL.Path = strings.TrimPrefix(r.URL.Path, "/api")
			r2.URL.RawPath = ""
			inner.ServeHTTP(w, r2)
		}))
	}
	return mux
}

func gateError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(struct {
		Error string `json:"error"`
	}{msg})
}

func (h *handler) releaseAndTrust(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		h.reply(w, r, nil, err)
		return
	}
	var req TrustRequest
	if err := decodeBody(r, &req); err != nil {
		h.reply(w, r, nil, err)
		return
	}
	v, err := h.m.ReleaseAndTrust(r.Context(), id, req)
	h.reply(w, r, v, err)
}

func (h *handler) listTrust(w http.ResponseWriter, r *http.Request) {
	v, err := h.m.ListTrust(r.Context())
	h.reply(w, r, v, err)
}

func (h *handler) deleteTrust(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err == nil {
		err = h.m.DeleteTrust(r.Context(), id)
	}
	h.reply(w, r, struct{}{}, err)
}

func (h *handler) dashboard(w http.ResponseWriter, r *http.Request) {
	v, err := h.m.Dashboard(r.Context())
	h.reply(w, r, v, err)
}

func (h *handler) timeline(w http.ResponseWriter, r *http.Request) {
	v, err := h.m.AccountTimeline(r.Context(), r.PathValue("name"))
	h.reply(w, r, v, err)
}

func (h *handler) config(w http.ResponseWriter, r *http.Request) {
	v, err := h.m.Config(r.Context())
	h.reply(w, r, struct {
		YAML string `json:"yaml"`
	}{v}, err)
}

func (h *handler) listUsers(w http.ResponseWriter, r *http.Request) {
	v, err := h.m.ListUsers(r.Context())
	h.reply(w, r, v, err)
}

func (h *handler) putUser(w http.ResponseWriter, r *http.Request) {
	var req PutUserRequest
	if err := decodeBody(r, &req); err != nil {
		h.reply(w, r, nil, err)
		return
	}
	req.Name = r.PathValue("name")
	v, err := h.m.PutUser(r.Context(), req)
	h.reply(w, r, v, err)
}

func (h *handler) removeUser(w http.ResponseWriter, r *http.Request) {
	h.reply(w, r, struct{}{}, h.m.RemoveUser(r.Context(), r.PathValue("name")))
}

func (h *handler) listTokens(w http.ResponseWriter, r *http.Request) {
	v, err := h.m.ListTokens(r.Context())
	h.reply(w, r, v, err)
}

func (h *handler) createToken(w http.ResponseWriter, r *http.Request) {
	var req CreateTokenRequest
	if err := decodeBody(r, &req); err != nil {
		h.reply(w, r, nil, err)
		return
	}
	v, err := h.m.CreateToken(r.Context(), req)
	h.reply(w, r, v, err)
}

func (h *handler) revokeToken(w http.ResponseWriter, r *http.Request) {
	h.reply(w, r, struct{}{}, h.m.RevokeToken(r.Context(), r.PathValue("id")))
}

func (h *handler) unlockAccount(w http.ResponseWriter, r *http.Request) {
	var req UnlockAccountRequest
	if err := decodeBody(r, &req); err != nil {
		h.reply(w, r, nil, err)
		return
	}
	req.Account = r.PathValue("name")
	v, err := h.m.UnlockAccount(r.Context(), req)
	h.reply(w, r, v, err)
}

func (h *handler) markSpam(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		h.reply(w, r, nil, err)
		return
	}
	var req struct {
		Note string `json:"note"`
	}
	if err := decodeBody(r, &req); err != nil {
		h.reply(w, r, nil, err)
		return
	}
	v, err := h.m.MarkHoldSpam(r.Context(), id, req.Note)
	h.reply(w, r, v, err)
}

func (h *handler) listIncidents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := ListIncidentsRequest{State: q.Get("state"), Account: q.Get("account")}
	var err error
	if req.Limit, err = intParam(q.Get("limit")); err == nil {
		req.Offset, err = intParam(q.Get("offset"))
	}
	if err != nil {
		h.reply(w, r, nil, err)
		return
	}
	v, err := h.m.ListIncidents(r.Context(), req)
	h.reply(w, r, v, err)
}

func (h *handler) getIncident(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		h.reply(w, r, nil, err)
		return
	}
	v, err := h.m.GetIncident(r.Context(), id)
	h.reply(w, r, v, err)
}

func (h *handler) openIncident(w http.ResponseWriter, r *http.Request) {
	var req OpenIncidentRequest
	if err := decodeBody(r, &req); err != nil {
		h.reply(w, r, nil, err)
		return
	}
	v, err := h.m.OpenIncident(r.Context(), req)
	h.reply(w, r, v, err)
}

func (h *handler) changeIncident(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		h.reply(w, r, nil, err)
		return
	}
	var req ChangeIncidentRequest
	if err := decodeBody(r, &req); err != nil {
		h.reply(w, r, nil, err)
		return
	}
	req.ID, req.Change = id, r.PathValue("change")
	v, err := h.m.ChangeIncident(r.Context(), req)
	h.reply(w, r, v, err)
}

func intParam(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: not a non-negative integer: %q", ErrBadRequest, s)
	}
	return n, nil
}

type handler struct {
	m   Methods
	log *slog.Logger
}

func (h *handler) reply(w http.ResponseWriter, r *http.Request, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if ex, ok := h.m.(Explainer); ok && err != nil {
		err = ex.Explain(r.Context(), err)
	}
	if err != nil {
		code := http.StatusInternalServerError
		switch {
		case errors.Is(err, ErrNotFound):
			code = http.StatusNotFound
		case errors.Is(err, ErrConflict):
			code = http.StatusConflict
		case errors.Is(err, ErrBadRequest):
			code = http.StatusBadRequest
		case errors.Is(err, ErrUnavailable):
			code = http.StatusServiceUnavailable
		}
		if code == http.StatusInternalServerError {
			h.log.Error("admin request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		}
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(errorBody{Error: err.Error()})
		return
	}
	_ = json.NewEncoder(w).Encode(v)
}

func pathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%w: id must be a positive integer", ErrBadRequest)
	}
	return id, nil
}

func (h *handler) status(w http.ResponseWriter, r *http.Request) {
	v, err := h.m.Status(r.Context())
	h.reply(w, r, v, err)
}

func (h *handler) listNodes(w http.ResponseWriter, r *http.Request) {
	v, err := h.m.ListNodes(r.Context())
	h.reply(w, r, v, err)
}

func (h *handler) retireNode(w http.ResponseWriter, r *http.Request) {
	v, err := h.m.RetireNode(r.Context(), r.PathValue("name"))
	h.reply(w, r, v, err)
}

func (h *handler) listHolds(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := ListHoldsRequest{State: q.Get("state"), Account: q.Get("account"), Reason: q.Get("reason"), ClientFamily: q.Get("client_family"), Query: q.Get("q")}
	var err error
	for _, tp := range []struct {
		name string
		t    *time.Time
	}{{"since", &req.Since}, {"until", &req.Until}} {
		if s := q.Get(tp.name); s != "" {
			if *tp.t, err = time.Parse(time.RFC3339, s); err != nil {
				h.reply(w, r, nil, fmt.Errorf("%w: %s must be an RFC 3339 time (2026-01-02T15:04:05Z)", ErrBadRequest, tp.name))
				return
			}
		}
	}
	if s := q.Get("limit"); s != "" {
		if req.Limit, err = strconv.Atoi(s); err != nil || req.Limit < 0 {
			h.reply(w, r, nil, fmt.Errorf("%w: limit must be a non-negative integer", ErrBadRequest))
			return
		}
	}
	if s := q.Get("offset"); s != "" {
		if req.Offset, err = strconv.Atoi(s); err != nil || req.Offset < 0 {
			h.reply(w, r, nil, fmt.Errorf("%w: offset must be a non-negative integer", ErrBadRequest))
			return
		}
	}
	v, err := h.m.ListHolds(r.Context(), req)
	h.reply(w, r, v, err)
}

func (h *handler) withID(w http.ResponseWriter, r *http.Request, f func(context.Context, int64) (*store.Hold, error)) {
	id, err := pathID(r)
	if err != nil {
		h.reply(w, r, nil, err)
		return
	}
	v, err := f(r.Context(), id)
	if err != nil {
		v = nil
	}
	h.reply(w, r, v, err)
}

func (h *handler) getHold(w http.ResponseWriter, r *http.Request) { h.withID(w, r, h.m.GetHold) }
func (h *handler) releaseHold(w http.ResponseWriter, r *http.Request) {
	h.withID(w, r, h.m.ReleaseHold)
}
func (h *handler) deleteHold(w http.ResponseWriter, r *http.Request) { h.withID(w, r, h.m.DeleteHold) }

func (h *handler) bulkHolds(w http.ResponseWriter, r *http.Request) {
	var req BulkHoldsRequest
	if err := decodeBody(r, &req); err != nil {
		h.reply(w, r, nil, err)
		return
	}
	v, err := h.m.BulkHolds(r.Context(), req)
	h.reply(w, r, v, err)
}

func (h *handler) sync(w http.ResponseWriter, r *http.Request) {
	v, err := h.m.SyncQueue(r.Context())
	h.reply(w, r, v, err)
}

func (h *handler) audit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.AuditFilter{Target: q.Get("target")}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			h.reply(w, r, nil, fmt.Errorf("%w: limit must be a non-negative integer", ErrBadRequest))
			return
		}
		f.Limit = n
	}
	if s := q.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			h.reply(w, r, nil, fmt.Errorf("%w: since must be RFC 3339", ErrBadRequest))
			return
		}
		f.Since = t
	}
	v, err := h.m.ListAudit(r.Context(), f)
	h.reply(w, r, v, err)
}

func (h *handler) listAccounts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := ListAccountsRequest{State: q.Get("state")}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			h.reply(w, r, nil, fmt.Errorf("%w: limit must be a non-negative integer", ErrBadRequest))
			return
		}
		req.Limit = n
	}
	v, err := h.m.ListAccounts(r.Context(), req)
	h.reply(w, r, v, err)
}

func (h *handler) getAccount(w http.ResponseWriter, r *http.Request) {
	v, err := h.m.GetAccount(r.Context(), r.PathValue("name"))
	h.reply(w, r, v, err)
}

func (h *handler) setAccountState(w http.ResponseWriter, r *http.Request) {
	var req SetAccountStateRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
		h.reply(w, r, nil, fmt.Errorf("%w: invalid JSON body: %v", ErrBadRequest, err))
		return
	}
	req.Account = r.PathValue("name")
	v, err := h.m.SetAccountState(r.Context(), req)
	h.reply(w, r, v, err)
}

// decodeBody reads a bounded JSON body; an empty body leaves v as it is.
func decodeBody(r *http.Request, v any) error {
	err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(v)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: invalid JSON body: %v", ErrBadRequest, err)
	}
	return nil
}
