package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/auth"
	"github.com/mailbrake/mailbrake/internal/store"
)

// holdStates are the quarantine list's state filter choices.
var holdStates = []string{string(store.HoldHeld), string(store.HoldReleased), string(store.HoldDeleted), string(store.HoldExpired), "all"}

// Quarantine paging: 50 rows read well on one screen; ops caps at 1000.
const (
	defaultHoldLimit = 50
	maxHoldLimit     = 1000
)

// maxBulk bounds one bulk action: each item is a postsuper call.
const maxBulk = 500

type quarantineData struct {
	State, Account, Reason, Family, Since, Until, Q string
	Limit                                           int
	States                                          []string
	Rows                                            []holdRow
	Prev, Next                                      string // page links, "" at either end
	Back                                            string // this list, for the actions to return to
	Total                                           int    // matching on every page
	From, To                                        int    // the rows of this page, 1-based
	All                                             *allHeld
}

// allHeld is the "every held message matching this filter" form (the
// "allheld" template): the filter, how many match and the newest ID, so
// that the action covers what the admin saw and nothing held since.
type allHeld struct {
	Pg      *page
	Fields  []field // the filter, as hidden fields
	Total   int
	Through int64
	What    string // "matching this filter", "of alice@example.org"
	Back    string
}

type field struct{ Name, Value string }

// newAllHeld is the form for the held messages a filter matches, or nil
// when none do or the user may not act.
func newAllHeld(pg *page, l *api.HoldList, fields []field, what, back string) *allHeld {
	if l == nil || l.Total == 0 || pg.P == nil || !pg.P.Can(auth.PermHoldsAct) {
		return nil
	}
	var set []field
	for _, f := range fields {
		if f.Value != "" {
			set = append(set, f)
		}
	}
	return &allHeld{Pg: pg, Fields: set, Total: l.Total, Through: l.Newest, What: what, Back: back}
}

// holdRow is one row of the quarantine list, rendered alone for htmx.
type holdRow struct {
	H    store.Hold
	Pg   *page
	Back string
}

func (s *Server) quarantine(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := quarantineData{
		State: q.Get("state"), Account: strings.TrimSpace(q.Get("account")), Reason: strings.TrimSpace(q.Get("reason")),
		Family: strings.TrimSpace(q.Get("family")), Since: q.Get("since"), Until: q.Get("until"), Q: strings.TrimSpace(q.Get("q")),
		States: holdStates,
	}
	if !q.Has("state") {
		d.State = string(store.HoldHeld)
	}
	req := api.ListHoldsRequest{State: d.State, Account: d.Account, Reason: d.Reason, ClientFamily: d.Family, Query: d.Q}
	var err error
	if req.Limit, err = intParam(q.Get("limit"), defaultHoldLimit, maxHoldLimit); err == nil {
		if req.Offset, err = intParam(q.Get("offset"), 0, 1<<30); err == nil {
			if req.Since, err = timeParam(d.Since); err == nil {
				req.Until, err = timeParam(d.Until)
			}
		}
	}
	if req.Limit == 0 {
		req.Limit = defaultHoldLimit
	}
	if err != nil {
		s.fail(w, r, err, "/quarantine")
		return
	}
	d.Limit = req.Limit
	list, err := s.o.Methods.ListHolds(r.Context(), req)
	if err != nil {
		s.fail(w, r, err, "/quarantine")
		return
	}
	pg := s.newPage(w, r, "Quarantine", "quarantine")
	query := func(offset int) string {
		v := url.Values{"state": {d.State}, "account": {d.Account}, "reason": {d.Reason}, "family": {d.Family},
			"since": {d.Since}, "until": {d.Until}, "q": {d.Q}}
		if req.Limit != defaultHoldLimit {
			v.Set("limit", strconv.Itoa(req.Limit))
		}
		if offset > 0 {
			v.Set("offset", strconv.Itoa(offset))
		}
		return withQuery("/quarantine", v)
	}
	d.Back = query(req.Offset)
	if req.Offset > 0 {
		d.Prev = query(max(0, req.Offset-req.Limit))
	}
	if len(list.Holds) >= req.Limit {
		d.Next = query(req.Offset + req.Limit)
	}
	for _, h := range list.Holds {
		d.Rows = append(d.Rows, holdRow{H: h, Pg: pg, Back: d.Back})
	}
	d.Total = list.Total
	if len(list.Holds) > 0 {
		d.From, d.To = req.Offset+1, req.Offset+len(list.Holds)
	}
	if d.State == string(store.HoldHeld) {
		what := "matching this filter"
		if d.Account == "" && d.Reason == "" && d.Family == "" && d.Since == "" && d.Until == "" && d.Q == "" {
			what = "(no filter: every held message)"
		}
		d.All = newAllHeld(pg, list, []field{{"account", d.Account}, {"reason", d.Reason}, {"family", d.Family},
			{"since", d.Since}, {"until", d.Until}, {"q", d.Q}}, what, query(0))
	}
	pg.Data = d
	s.render(w, r, http.StatusOK, "quarantine", pg)
}

type bulkData struct {
	Action    string
	Results   []bulkResult
	OK, Total int
	Back      string
}

type bulkResult struct {
	ID    string
	Error string // "" when done
}

// bulk releases or deletes the selected holds one by one and reports each.
func (s *Server) bulk(w http.ResponseWriter, r *http.Request) {
	back := backOr(r, "/quarantine")
	action := r.PostFormValue("action")
	var do func(context.Context, int64) (*store.Hold, error)
	verb := ""
	switch action {
	case "release":
		do, verb = s.o.Methods.ReleaseHold, "Released"
	case "delete":
		do, verb = s.o.Methods.DeleteHold, "Deleted"
	default:
		s.fail(w, r, fmt.Errorf("%w: choose release or delete", errBadForm), back)
		return
	}
	ids := r.PostForm["id"]
	if len(ids) == 0 {
		s.setFlash(w, true, "No message selected.")
		http.Redirect(w, r, back, http.StatusSeeOther)
		return
	}
	if len(ids) > maxBulk {
		s.fail(w, r, fmt.Errorf("%w: at most %d messages at once", errBadForm, maxBulk), back)
		return
	}
	d := bulkData{Action: action, Back: back, Total: len(ids)}
	for _, v := range ids {
		res := bulkResult{ID: v}
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || id <= 0 {
			res.Error = "not a message ID"
		} else if _, err := do(r.Context(), id); err != nil {
			res.Error = s.itemError(r, err)
		} else {
			d.OK++
		}
		d.Results = append(d.Results, res)
	}
	msg := fmt.Sprintf("%s %d of %d messages.", verb, d.OK, len(ids))
	if d.OK == len(ids) {
		s.redirect(w, r, back, msg)
		return
	}
	pg := s.newPage(w, r, "Quarantine: "+action, "quarantine")
	pg.Flash = &flash{Error: true, Text: msg + " See below for the others."}
	pg.Data = d
	s.render(w, r, http.StatusOK, "bulk", pg)
}

// bulkAll releases or deletes every held message matching the posted
// filter, through the newest one the admin saw, when no more match than
// the admin confirmed (ops refuses otherwise).
func (s *Server) bulkAll(w http.ResponseWriter, r *http.Request) {
	back := backOr(r, "/quarantine")
	req := api.BulkHoldsRequest{Action: r.PostFormValue("action"), Filter: api.ListHoldsRequest{
		Account: strings.TrimSpace(r.PostFormValue("account")), Reason: strings.TrimSpace(r.PostFormValue("reason")),
		ClientFamily: strings.TrimSpace(r.PostFormValue("family")), Query: strings.TrimSpace(r.PostFormValue("q"))}}
	var err error
	if req.Filter.Since, err = timeParam(r.PostFormValue("since")); err == nil {
		if req.Filter.Until, err = timeParam(r.PostFormValue("until")); err == nil {
			if req.Through, err = strconv.ParseInt(r.PostFormValue("through"), 10, 64); err == nil {
				req.Expect, err = strconv.Atoi(r.PostFormValue("expect"))
			}
		}
	}
	if err != nil {
		s.fail(w, r, fmt.Errorf("%w: the form lacks the count or the newest message it was shown", errBadForm), back)
		return
	}
	res, err := s.o.Methods.BulkHolds(r.Context(), req)
	if err != nil {
		s.fail(w, r, err, back)
		return
	}
	verb := map[string]string{"release": "Released", "delete": "Deleted"}[res.Action]
	msg := fmt.Sprintf("%s %d of %d held messages.", verb, res.Done, res.Matched)
	if res.Remaining > 0 {
		msg += fmt.Sprintf(" %d more match: press the button again for the next ones.", res.Remaining)
	}
	if len(res.Failed) == 0 {
		s.redirect(w, r, back, msg)
		return
	}
	d := bulkData{Action: res.Action, Back: back, OK: res.Done, Total: res.Matched - res.Remaining}
	for _, f := range res.Failed {
		d.Results = append(d.Results, bulkResult{ID: strconv.FormatInt(f.ID, 10), Error: f.Error})
	}
	pg := s.newPage(w, r, "Quarantine: "+res.Action, "quarantine")
	pg.Flash = &flash{Error: true, Text: msg + " See below for the others."}
	pg.Data = d
	s.render(w, r, http.StatusOK, "bulk", pg)
}

// itemError is the message shown for one failed item of a bulk action.
func (s *Server) itemError(r *http.Request, err error) string {
	err = s.explain(r, err)
	if code := statusOf(err); code != http.StatusInternalServerError {
		return err.Error()
	}
	s.log.Error("web: bulk item failed", "path", r.URL.Path, "err", err)
	return "internal error (see the server log)"
}

type holdData struct {
	H       *store.Hold
	Content bool // the role may see headers and preview
	Trust   []choice
}

type choice struct {
	Value, Label string
	Selected     bool
}

// trustChoices: how long "release and trust" trusts the sender's client
// (ops accepts 1 minute to 90 days; 7 days is its default).
var trustChoices = []choice{{"24h", "1 day", false}, {"168h", "7 days", true}, {"720h", "30 days", false}, {"2160h", "90 days", false}}

func (s *Server) hold(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(r)
	if !ok {
		s.renderError(w, r, http.StatusNotFound, "There is no such message.")
		return
	}
	h, err := s.o.Methods.GetHold(r.Context(), id)
	if err != nil {
		s.fail(w, r, err, "/quarantine")
		return
	}
	content := auth.FromContext(r.Context()).Can(auth.PermHoldsContent)
	if !content { // ops strips them too; the page must never show them
		h.Headers, h.Preview = "", ""
	}
	pg := s.newPage(w, r, fmt.Sprintf("Message %d", h.ID), "quarantine")
	pg.Data = holdData{H: h, Content: content, Trust: trustChoices}
	s.render(w, r, http.StatusOK, "hold", pg)
}

// holdAction releases or deletes one hold.
func (s *Server) holdAction(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(r)
	if !ok {
		s.renderError(w, r, http.StatusNotFound, "There is no such message.")
		return
	}
	self := fmt.Sprintf("/quarantine/%d", id)
	do, done := s.o.Methods.ReleaseHold, "released"
	if path.Base(r.URL.Path) == "delete" {
		do, done = s.o.Methods.DeleteHold, "deleted"
	}
	h, err := do(r.Context(), id)
	if err != nil {
		s.fail(w, r, err, self)
		return
	}
	if isRowRequest(r) {
		pg := s.basePage(r, "", "quarantine")
		s.execute(w, r, http.StatusOK, "quarantine", "hold_row", holdRow{H: *h, Pg: pg, Back: backOr(r, "/quarantine")})
		return
	}
	s.redirect(w, r, backOr(r, self), fmt.Sprintf("Message %d %s.", id, done))
}

func (s *Server) markSpam(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(r)
	if !ok {
		s.renderError(w, r, http.StatusNotFound, "There is no such message.")
		return
	}
	self := fmt.Sprintf("/quarantine/%d", id)
	in, err := s.o.Methods.MarkHoldSpam(r.Context(), id, strings.TrimSpace(r.PostFormValue("note")))
	if err != nil {
		s.fail(w, r, err, self)
		return
	}
	if in == nil {
		s.redirect(w, r, self, fmt.Sprintf("Message %d marked as spam.", id))
		return
	}
	s.redirect(w, r, fmt.Sprintf("/incidents/%d", in.ID),
		fmt.Sprintf("Message %d marked as spam and deleted; incident %d of %s is %s.", id, in.ID, in.Account, in.State))
}

func (s *Server) releaseAndTrust(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(r)
	if !ok {
		s.renderError(w, r, http.StatusNotFound, "There is no such message.")
		return
	}
	self := fmt.Sprintf("/quarantine/%d", id)
	d, err := time.ParseDuration(r.PostFormValue("duration"))
	if err != nil || d <= 0 {
		s.fail(w, r, fmt.Errorf("%w: choose how long to trust the sender", errBadForm), self)
		return
	}
	h, err := s.o.Methods.ReleaseAndTrust(r.Context(), id, api.TrustRequest{Duration: d, Note: strings.TrimSpace(r.PostFormValue("note"))})
	if err != nil {
		s.fail(w, r, err, self)
		return
	}
	s.redirect(w, r, self, fmt.Sprintf("Message %d released; %s is trusted with client %s for %s.", id, h.Account, h.ClientFamily, trustLabel(d)))
}

func trustLabel(d time.Duration) string {
	for _, c := range trustChoices {
		if mustDuration(c.Value) == d {
			return c.Label
		}
	}
	return d.String()
}

func mustDuration(s string) time.Duration {
	d, _ := time.ParseDuration(s)
	return d
}
