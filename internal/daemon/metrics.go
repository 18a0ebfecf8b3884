package daemon

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailbrake/mailbrake/internal/auth"
	"github.com/mailbrake/mailbrake/internal/engine"
	"github.com/mailbrake/mailbrake/internal/store"
)

// metrics are declared once per daemon on its own registry. Labels come
// only from fixed sets (protocol states, actions, rule reasons from the
// configuration), never from accounts or addresses.
type metrics struct {
	reg            *prometheus.Registry
	policyRequests *prometheus.CounterVec   // state, action
	policyLatency  *prometheus.HistogramVec // state
	policyErrors   prometheus.Counter
	milterMessages *prometheus.CounterVec // decision
	milterLatency  prometheus.Histogram
	verdicts       *prometheus.CounterVec // path, action, reason
	holds          *prometheus.CounterVec // path
	storeErrors    *prometheus.CounterVec // op
	shadow         *prometheus.CounterVec // path, action
	adminOps       *prometheus.CounterVec // op: release, delete, spam, trust, unlock, …
	incidents      *prometheus.CounterVec // severity
	steps          *prometheus.CounterVec // step, status
	logins         *prometheus.CounterVec // result
	policyServices *prometheus.GaugeVec   // stages
	reinjected     *prometheus.CounterVec // path
	connsOpen      *prometheus.GaugeVec   // listener
	connsWaited    *prometheus.CounterVec // listener
}

func newMetrics() *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		reg: reg,
		policyRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailbrake_policy_requests_total", Help: "Policy delegation requests answered, by protocol state and action.",
		}, []string{"state", "action"}),
		policyLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mailbrake_policy_request_seconds", Help: "Time to decide a policy request.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .05, .25, 1},
		}, []string{"state"}),
		policyErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mailbrake_policy_errors_total", Help: "Policy connections closed because of bad input or an internal error.",
		}),
		milterMessages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailbrake_milter_messages_total", Help: "Messages decided by the milter, by decision.",
		}, []string{"decision"}),
		milterLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "mailbrake_milter_decision_seconds", Help: "Time to decide a message at end of message.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .05, .25, 1, 5},
		}),
		verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailbrake_verdicts_total", Help: "Verdicts other than allow, by path, action and reason.",
		}, []string{"path", "action", "reason"}),
		holds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailbrake_holds_total", Help: "Messages held for review, by path.",
		}, []string{"path"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailbrake_store_errors_total", Help: "Store and counter errors, by operation.",
		}, []string{"op"}),
		shadow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailbrake_shadow_verdicts_total", Help: "Verdicts not acted on because of shadow mode, by path and the action they would have had.",
		}, []string{"path", "action"}),
		adminOps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailbrake_admin_operations_total", Help: "Admin operations that changed state (audit log actions), by action.",
		}, []string{"action"}),
		incidents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailbrake_incidents_opened_total", Help: "Incidents opened, by severity.",
		}, []string{"severity"}),
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailbrake_playbook_steps_total", Help: "Playbook steps run, by step and outcome.",
		}, []string{"step", "status"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailbrake_web_logins_total", Help: "Web UI logins, by result (ok, failed, rate-limited).",
		}, []string{"result"}),
		policyServices: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mailbrake_policy_services",
			Help: "Postfix smtpd services asking the policy server, by the protocol states they send (rcpt-only, rcpt+eom, …; pending until enough requests came).",
		}, []string{"stages"}),
		reinjected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailbrake_reinjected_total",
			Help: "Requests and messages recognised as a content filter's re-injection of mail decided before (learned from, not charged or held), by path.",
		}, []string{"path"}),
	}
	// Present at 0 from the start: "stays at 0" is how an admin sees that
	// no re-injection is recognised (docs/zimbra.md), and an absent series
	// says nothing.
	for _, path := range []engine.Path{engine.PathMilter, engine.PathPolicy} {
		m.reinjected.WithLabelValues(string(path))
	}
	m.connsOpen = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "mailbrake_connections_open", Help: "Connections open, by listener (http, policy, milter).",
	}, []string{"listener"})
	m.connsWaited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mailbrake_connections_limit_reached_total", Help: "Connections that waited because the listener's connection limit was reached, by listener.",
	}, []string{"listener"})
	reg.MustRegister(m.own()...)
	reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// own are mailbrake's own collectors (the state gauges are added by the
// daemon, which they read).
func (m *metrics) own() []prometheus.Collector {
	return []prometheus.Collector{m.connsOpen, m.connsWaited, m.policyRequests, m.policyLatency, m.policyErrors, m.milterMessages, m.milterLatency,
		m.verdicts, m.holds, m.storeErrors, m.shadow, m.adminOps, m.incidents, m.steps, m.logins, m.policyServices, m.reinjected}
}

// opsEvents counts what ops does, where it happens (ops.Events).
type opsEvents struct{ m *metrics }

func (e opsEvents) AdminOp(action store.AuditAction) {
	e.m.adminOps.WithLabelValues(string(action)).Inc()
}
func (e opsEvents) IncidentOpened(sev store.Severity) {
	e.m.incidents.WithLabelValues(string(sev)).Inc()
}
func (e opsEvents) Step(step string, status store.StepStatus) {
	e.m.steps.WithLabelValues(step, string(status)).Inc()
}

// loginMetrics counts web logins by result.
type loginMetrics struct {
	*auth.Service
	m *metrics
}

func (l loginMetrics) Login(ctx context.Context, name, password, remoteIP string) (*auth.Principal, error) {
	p, err := l.Service.Login(ctx, name, password, remoteIP)
	switch {
	case err == nil:
		l.m.logins.WithLabelValues("ok").Inc()
	case errors.Is(err, auth.ErrRateLimited):
		l.m.logins.WithLabelValues("rate-limited").Inc()
	default:
		l.m.logins.WithLabelValues("failed").Inc()
	}
	return p, err
}

// enforceMetrics counts what the enforcer does (enforce.Metrics).
type enforceMetrics struct{ m *metrics }

func (e enforceMetrics) Verdict(path, action, reason string) {
	e.m.verdicts.WithLabelValues(path, action, reason).Inc()
}
func (e enforceMetrics) Shadow(path, action string) { e.m.shadow.WithLabelValues(path, action).Inc() }
func (e enforceMetrics) Held(path string)           { e.m.holds.WithLabelValues(path).Inc() }
func (e enforceMetrics) StoreError(op string)       { e.m.storeErrors.WithLabelValues(op).Inc() }
