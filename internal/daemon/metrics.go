package daemon

import (
	"github.com/prometheus/client_golang/prometheus"
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
	}
	reg.MustRegister(m.policyRequests, m.policyLatency, m.policyErrors, m.milterMessages, m.milterLatency, m.verdicts, m.holds, m.storeErrors, m.shadow,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}
