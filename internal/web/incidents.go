package web

import (
	"cmp"
	"fmt"
	"net/http"
	"strings"

	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/store"
)

var incidentStates = []string{"active", string(store.IncidentOpen), string(store.IncidentConfirmed), string(store.IncidentContained),
	string(store.IncidentResolved), string(store.IncidentDismissed), "all"}

var severities = []string{"", string(store.SeverityLow), string(store.SeverityMedium), string(store.SeverityHigh), string(store.SeverityCritical)}

type incidentsData struct {
	State, Account string
	States         []string
	Severities     []string
	Incidents      []store.Incident
	Prev, Next     string
}

// Incident paging: 50 rows a page; ops caps at its own maximum.
const defaultIncidentLimit = 50

func (s *Server) incidents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := incidentsData{State: cmp.Or(q.Get("state"), "active"), Account: strings.TrimSpace(q.Get("account")), States: incidentStates, Severities: severities}
	offset, err := intParam(q.Get("offset"), 0, 1<<30)
	if err != nil {
		s.fail(w, r, err, "/incidents")
		return
	}
	d.Incidents, err = s.o.Methods.ListIncidents(r.Context(), api.ListIncidentsRequest{State: d.State, Account: d.Account, Limit: defaultIncidentLimit, Offset: offset})
	if err != nil {
		s.fail(w, r, err, "/incidents")
		return
	}
	page := func(off int) string {
		v := map[string][]string{"state": {d.State}, "account": {d.Account}}
		if off > 0 {
			v["offset"] = []string{fmt.Sprint(off)}
		}
		return withQuery("/incidents", v)
	}
	if offset > 0 {
		d.Prev = page(max(0, offset-defaultIncidentLimit))
	}
	if len(d.Incidents) >= defaultIncidentLimit {
		d.Next = page(offset + defaultIncidentLimit)
	}
	pg := s.newPage(w, r, "Incidents", "incidents")
	pg.Data = d
	s.render(w, r, http.StatusOK, "incidents", pg)
}

type incidentData struct {
	I      *store.Incident
	Active bool
}

func (s *Server) incident(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(r)
	if !ok {
		s.renderError(w, r, http.StatusNotFound, "There is no such incident.")
		return
	}
	in, err := s.o.Methods.GetIncident(r.Context(), id)
	if err != nil {
		s.fail(w, r, err, "/incidents")
		return
	}
	pg := s.newPage(w, r, fmt.Sprintf("Incident %d", in.ID), "incidents")
	pg.Data = incidentData{I: in, Active: in.State.Active()}
	s.render(w, r, http.StatusOK, "incident", pg)
}

// incidentChanges: the changes an admin makes, and what the flash says.
var incidentChanges = map[string]string{
	api.IncidentConfirm: "confirmed",
	api.IncidentDismiss: "dismissed",
	api.IncidentResolve: "resolved",
}

func (s *Server) changeIncident(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(r)
	change := r.PathValue("change")
	done, known := incidentChanges[change]
	if !ok || !known {
		s.renderError(w, r, http.StatusNotFound, "There is no such incident change.")
		return
	}
	self := fmt.Sprintf("/incidents/%d", id)
	in, err := s.o.Methods.ChangeIncident(r.Context(), api.ChangeIncidentRequest{ID: id, Change: change, Note: strings.TrimSpace(r.PostFormValue("note"))})
	if err != nil {
		s.fail(w, r, err, self)
		return
	}
	s.redirect(w, r, self, fmt.Sprintf("Incident %d %s; it is now %s.", in.ID, done, in.State))
}

func (s *Server) openIncident(w http.ResponseWriter, r *http.Request) {
	req := api.OpenIncidentRequest{
		Account:  strings.TrimSpace(r.PostFormValue("account")),
		Playbook: strings.TrimSpace(r.PostFormValue("playbook")),
		Severity: r.PostFormValue("severity"),
		Note:     strings.TrimSpace(r.PostFormValue("note")),
	}
	if req.Account == "" {
		s.fail(w, r, fmt.Errorf("%w: an account is required", errBadForm), "/incidents")
		return
	}
	in, err := s.o.Methods.OpenIncident(r.Context(), req)
	if err != nil {
		s.fail(w, r, err, "/incidents")
		return
	}
	s.redirect(w, r, fmt.Sprintf("/incidents/%d", in.ID), fmt.Sprintf("Incident %d of %s is %s.", in.ID, in.Account, in.State))
}
