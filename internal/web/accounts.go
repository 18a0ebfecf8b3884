package web

import (
	"cmp"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/auth"
	"github.com/mailbrake/mailbrake/internal/store"
)

var accountStates = []string{"all", string(store.AccountWatch), string(store.AccountRestricted), string(store.AccountLocked), string(store.AccountNormal)}

type accountsData struct {
	State    string
	States   []string
	Limit    int
	Accounts []store.Account
}

func (s *Server) accounts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if name := strings.TrimSpace(q.Get("name")); name != "" { // the "go to account" box
		http.Redirect(w, r, "/accounts/"+url.PathEscape(name), http.StatusSeeOther)
		return
	}
	d := accountsData{State: cmp.Or(q.Get("state"), "all"), States: accountStates}
	var err error
	if d.Limit, err = intParam(q.Get("limit"), 100, 1000); err != nil {
		s.fail(w, r, err, "/accounts")
		return
	}
	d.Accounts, err = s.o.Methods.ListAccounts(r.Context(), api.ListAccountsRequest{State: d.State, Limit: d.Limit})
	if err != nil {
		s.fail(w, r, err, "/accounts")
		return
	}
	pg := s.newPage(w, r, "Accounts", "accounts")
	pg.Data = d
	s.render(w, r, http.StatusOK, "accounts", pg)
}

type accountData struct {
	A                        *api.AccountDetail
	Path                     string // /accounts/NAME, escaped
	Baseline, Novelty, Score []string
	Incidents                []store.Incident
	Held                     int      // messages of the account held now
	HeldList                 string   // the quarantine filtered on the account
	All                      *allHeld // act on all of them
	Chart, Recent            *chart   // the last 24 hours by the hour, the last 6 by five minutes
	Events                   []api.TimelineEvent
	TimelineError            string
}

func (s *Server) account(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	ctx := r.Context()
	a, err := s.o.Methods.GetAccount(ctx, name)
	if err != nil {
		s.fail(w, r, err, "/accounts")
		return
	}
	d := accountData{A: a, Path: "/accounts/" + url.PathEscape(a.Name)}
	if a.Baseline != nil {
		d.Baseline = a.Baseline.Summary()
	}
	if a.Score != nil {
		d.Score = a.Score.Summary()
	}
	if a.Novelty != nil {
		d.Novelty = a.Novelty.Summary()
	}
	if tl, err := s.o.Methods.AccountTimeline(ctx, a.Name); err != nil {
		d.TimelineError = "The sending timeline is not available."
		if statusOf(err) == http.StatusInternalServerError {
			s.log.Error("web: account timeline", "account", a.Name, "err", err)
		} else {
			d.TimelineError += " " + err.Error()
		}
	} else {
		d.Chart = newChart("Messages sent by "+a.Name+" per hour, last 24 hours", tl.Points, tl.Events)
		d.Recent = newChart("Messages sent by "+a.Name+" per five minutes, last 6 hours", tl.Recent, tl.Events)
		d.Events = tl.Events
	}
	if auth.FromContext(ctx).Can(auth.PermIncidentsRead) {
		if d.Incidents, err = s.o.Methods.ListIncidents(ctx, api.ListIncidentsRequest{State: "all", Account: a.Name, Limit: 20}); err != nil {
			s.fail(w, r, err, "/accounts")
			return
		}
	}
	pg := s.newPage(w, r, a.Name, "accounts")
	if auth.FromContext(ctx).Can(auth.PermHoldsRead) {
		l, err := s.o.Methods.ListHolds(ctx, api.ListHoldsRequest{State: string(store.HoldHeld), Account: a.Name, Limit: 1})
		if err != nil {
			s.fail(w, r, err, "/accounts")
			return
		}
		d.Held = l.Total
		d.HeldList = withQuery("/quarantine", url.Values{"state": {string(store.HoldHeld)}, "account": {a.Name}})
		d.All = newAllHeld(pg, l, []field{{"account", a.Name}}, "of "+a.Name, d.Path)
	}
	pg.Data = d
	s.render(w, r, http.StatusOK, "account", pg)
}

// accountChanges are the states an admin sets from the account page; a
// lock comes from a playbook and ends with unlock.
var accountChanges = map[string]string{
	string(store.AccountRestricted): "restricted",
	string(store.AccountNormal):     "back to normal",
	string(store.AccountWatch):      "watched",
	string(store.AccountLocked):     "locked on every configured system",
}

func (s *Server) setAccountState(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	self := "/accounts/" + url.PathEscape(name)
	state, reason := r.PostFormValue("state"), strings.TrimSpace(r.PostFormValue("reason"))
	done, ok := accountChanges[state]
	switch {
	case !ok:
		s.fail(w, r, fmt.Errorf("%w: the state must be restricted, normal, watch or locked", errBadForm), self)
		return
	case reason == "":
		s.fail(w, r, fmt.Errorf("%w: a reason is required", errBadForm), self)
		return
	}
	a, err := s.o.Methods.SetAccountState(r.Context(), api.SetAccountStateRequest{Account: name, State: state, Reason: reason})
	if err != nil {
		s.fail(w, r, err, self)
		return
	}
	s.redirect(w, r, self, fmt.Sprintf("%s is %s.", a.Name, done))
}

func (s *Server) unlockAccount(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	self := "/accounts/" + url.PathEscape(name)
	req := api.UnlockAccountRequest{Account: name, Override: r.PostFormValue("override") != "", Reason: strings.TrimSpace(r.PostFormValue("reason"))}
	a, err := s.o.Methods.UnlockAccount(r.Context(), req)
	if err != nil {
		s.fail(w, r, err, self)
		return
	}
	s.redirect(w, r, self, fmt.Sprintf("%s is unlocked.", a.Name))
}

func scalar(x any) string {
	switch t := x.(type) {
	case nil:
		return "—"
	case string:
		return t
	}
	return fmt.Sprint(x)
}
