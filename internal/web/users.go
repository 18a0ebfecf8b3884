package web

import (
	"net/http"
	"strings"
	"time"

	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/auth"
	"github.com/mailbrake/mailbrake/internal/store"
)

type usersData struct {
	Users  []store.User
	Tokens []store.Token
	Roles  []auth.Role
	// NewToken is a token just created: its secret is shown on this one
	// page and never again.
	NewToken *api.NewToken
}

func (s *Server) usersPage(w http.ResponseWriter, r *http.Request, created *api.NewToken) {
	d := usersData{Roles: auth.Roles, NewToken: created}
	var err error
	if d.Users, err = s.o.Methods.ListUsers(r.Context()); err == nil {
		d.Tokens, err = s.o.Methods.ListTokens(r.Context())
	}
	if err != nil {
		s.fail(w, r, err, "")
		return
	}
	pg := s.newPage(w, r, "Users and tokens", "users")
	pg.Data = d
	s.render(w, r, http.StatusOK, "users", pg)
}

func (s *Server) users(w http.ResponseWriter, r *http.Request) { s.usersPage(w, r, nil) }

// putUser adds a user or sets a role or password.
func (s *Server) putUser(w http.ResponseWriter, r *http.Request) {
	req := api.PutUserRequest{Name: strings.TrimSpace(r.PostFormValue("name")), Role: r.PostFormValue("role"), Password: r.PostFormValue("password")}
	u, err := s.o.Methods.PutUser(r.Context(), req)
	if err != nil {
		s.fail(w, r, err, "/users")
		return
	}
	s.redirect(w, r, "/users", "User "+u.Name+" saved ("+u.Role+"); their sessions were ended.")
}

func (s *Server) removeUser(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if p := auth.FromContext(r.Context()); p != nil && p.Name == name {
		s.fail(w, r, errBadForm, "/users")
		return
	}
	if err := s.o.Methods.RemoveUser(r.Context(), name); err != nil {
		s.fail(w, r, err, "/users")
		return
	}
	s.redirect(w, r, "/users", "User "+name+" removed.")
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	ttl, err := time.ParseDuration(strings.TrimSpace(r.PostFormValue("ttl")))
	if r.PostFormValue("ttl") == "" {
		ttl, err = 0, nil
	}
	if err != nil {
		s.fail(w, r, errBadForm, "/users")
		return
	}
	t, err := s.o.Methods.CreateToken(r.Context(), api.CreateTokenRequest{Name: strings.TrimSpace(r.PostFormValue("name")), Role: r.PostFormValue("role"), TTL: ttl})
	if err != nil {
		s.fail(w, r, err, "/users")
		return
	}
	// Shown in this answer only; the page is not cached (no-store).
	s.usersPage(w, r, t)
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.o.Methods.RevokeToken(r.Context(), id); err != nil {
		s.fail(w, r, err, "/users")
		return
	}
	s.redirect(w, r, "/users", "Token "+id+" revoked.")
}
