package web

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/auth"
	"github.com/mailbrake/mailbrake/internal/store"
)

type dashboardData struct {
	D     *api.Dashboard
	Chart *chart
	Nodes *nodeCount // nil: not a cluster of several nodes, or not readable
}

// nodeCount is the dashboard's card of a cluster's nodes.
type nodeCount struct{ All, Down int }

func (s *Server) dashboard(w http.ResponseWriter, r *http.Request) {
	d, err := s.o.Methods.Dashboard(r.Context())
	if err != nil {
		s.fail(w, r, err, "")
		return
	}
	pg := s.newPage(w, r, "Dashboard", "dashboard")
	data := dashboardData{D: d, Chart: newChart("Outbound messages per hour, last 24 hours", d.Volume, nil)}
	if auth.FromContext(r.Context()).Can(auth.PermHoldsRead) {
		// A node that is down is worth a card; one node alone is not.
		if l, err := s.o.Methods.ListNodes(r.Context()); err == nil && l.Shared && len(l.Nodes) > 1 {
			data.Nodes = &nodeCount{All: len(l.Nodes)}
			for _, n := range l.Nodes {
				if n.State != api.NodeUp {
					data.Nodes.Down++
				}
			}
		}
	}
	pg.Data = data
	s.render(w, r, http.StatusOK, "dashboard", pg)
}

// retireNode forgets a node taken out of the cluster (api.Methods.RetireNode).
func (s *Server) retireNode(w http.ResponseWriter, r *http.Request) {
	res, err := s.o.Methods.RetireNode(r.Context(), r.PathValue("name"))
	if err != nil {
		s.fail(w, r, err, "/nodes")
		return
	}
	s.redirect(w, r, "/nodes", fmt.Sprintf("Node %s retired: %d held messages marked deleted, %d waiting commands failed.", res.Node, res.Holds, res.Commands))
}

// nodes lists the cluster's nodes (this node alone without shared
// records).
func (s *Server) nodes(w http.ResponseWriter, r *http.Request) {
	l, err := s.o.Methods.ListNodes(r.Context())
	if err != nil {
		s.fail(w, r, err, "")
		return
	}
	pg := s.newPage(w, r, "Nodes", "nodes")
	pg.Data = l
	s.render(w, r, http.StatusOK, "nodes", pg)
}

type auditData struct {
	Target, Since string
	Limit         int
	Entries       []store.AuditEntry
}

func (s *Server) audit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := auditData{Target: strings.TrimSpace(q.Get("target")), Since: q.Get("since")}
	f := store.AuditFilter{Target: d.Target}
	var err error
	if d.Limit, err = intParam(q.Get("limit"), 100, 1000); err == nil {
		f.Since, err = timeParam(d.Since)
	}
	if err != nil {
		s.fail(w, r, err, "/audit")
		return
	}
	f.Limit = d.Limit
	if d.Entries, err = s.o.Methods.ListAudit(r.Context(), f); err != nil {
		s.fail(w, r, err, "/audit")
		return
	}
	pg := s.newPage(w, r, "Audit log", "audit")
	pg.Data = d
	s.render(w, r, http.StatusOK, "audit", pg)
}

func (s *Server) config(w http.ResponseWriter, r *http.Request) {
	text, err := s.o.Methods.Config(r.Context())
	if err != nil {
		s.fail(w, r, err, "")
		return
	}
	pg := s.newPage(w, r, "Configuration", "config")
	pg.Data = text
	s.render(w, r, http.StatusOK, "config", pg)
}

func (s *Server) trust(w http.ResponseWriter, r *http.Request) {
	es, err := s.o.Methods.ListTrust(r.Context())
	if err != nil {
		s.fail(w, r, err, "")
		return
	}
	pg := s.newPage(w, r, "Trusted senders", "trust")
	pg.Data = es
	s.render(w, r, http.StatusOK, "trust", pg)
}

func (s *Server) endTrust(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(r)
	if !ok {
		s.renderError(w, r, http.StatusNotFound, "There is no such trust entry.")
		return
	}
	if err := s.o.Methods.DeleteTrust(r.Context(), id); err != nil {
		s.fail(w, r, err, "/trust")
		return
	}
	s.redirect(w, r, "/trust", fmt.Sprintf("Trust entry %d ended: that sender's findings act again.", id))
}
