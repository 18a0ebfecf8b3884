package daemon

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/mailbrake/mailbrake/internal/engine"
	"github.com/mailbrake/mailbrake/internal/policy"
	"github.com/mailbrake/mailbrake/internal/translate"
)

// policyAdapter turns policy requests into engine submissions and verdicts
// into policy actions.
type policyAdapter struct {
	d *Daemon
	// relayedLogged: the first relayed request left to the milter was logged.
	relayedLogged atomic.Bool
}

func (d *Daemon) policyServer() *policy.Server {
	a := &policyAdapter{d: d}
	return &policy.Server{
		Handler:     a,
		Logger:      d.log.With("path", "policy"),
		ReadTimeout: d.cfg.Policy.MaxIdle.D(),
		// Not decided in time (the store locked): the site's on_error
		// verdict, as for an engine error, instead of no answer.
		DecisionTimeout: d.cfg.Policy.DecisionTimeout.D(),
		OnTimeout: func(req *policy.Request) policy.Response {
			d.metrics.storeErrors.WithLabelValues("decision-timeout").Inc()
			sub, ok := d.translate.PolicySubmission(req)
			if !ok {
				return policy.Dunno()
			}
			v := engine.Verdict{Action: d.current().Engine.OnError, Reasons: []engine.Reason{engine.ReasonEngineError}}
			if v.Action == engine.ActionDefer {
				v.Text = "mailbrake: decision timed out, try again later"
			}
			return translate.PolicyResponse(sub, v)
		},
		Observe: func(state string, dur time.Duration, err error) {
			if err != nil {
				d.metrics.policyErrors.Inc()
				return
			}
			d.metrics.policyLatency.WithLabelValues(translate.StateLabel(state)).Observe(dur.Seconds())
		},
	}
}

// Check implements policy.Handler. Decisions happen at RCPT (per
// recipient) and END-OF-MESSAGE (recipient_count known); every other
// protocol state is answered DUNNO.
func (a *policyAdapter) Check(ctx context.Context, req *policy.Request) (policy.Response, error) {
	d := a.d
	a.observeWiring(req)
	sub, ok := d.translate.PolicySubmission(req)
	if !ok {
		d.metrics.policyRequests.WithLabelValues(translate.StateLabel(req.ProtocolState), "DUNNO").Inc()
		return policy.Dunno(), nil
	}
	account := sub.Account
	start := time.Now()
	v, err := d.engine.Evaluate(ctx, sub)
	if err != nil {
		d.metrics.storeErrors.WithLabelValues("counters").Inc()
		d.log.Warn("engine error; on_error verdict applies", "instance", req.Instance, "account", account, "err", err)
	}
	if v.Reinjected {
		d.logReinjected(sub, v)
		d.metrics.policyRequests.WithLabelValues(translate.StateLabel(req.ProtocolState), "DUNNO").Inc()
		return policy.Dunno(), nil
	}
	if v.Undecided && a.relayedLogged.CompareAndSwap(false, true) {
		d.log.Info("policy: mail from trusted networks without SASL is left to the milter, which reads the relay's account header; the policy path answers DUNNO and charges nothing (identity.relayed_on_policy: milter)",
			"client_address", req.ClientAddress, "instance", req.Instance)
	}
	if !req.Claim() {
		// Decided after policy.decision_timeout: Postfix got the on_error
		// verdict and the message went on as that said. This decision is
		// not acted on — no hold recorded for a message not held, no
		// finding for the account.
		d.log.Warn("policy: decided after the decision timeout; the on_error verdict was answered and this decision is dropped",
			"instance", req.Instance, "account", account, "action", v.Action, "took", time.Since(start))
		return policy.Dunno(), nil
	}
	resp := a.respond(ctx, sub, v, time.Since(start))
	d.metrics.policyRequests.WithLabelValues(translate.StateLabel(req.ProtocolState), translate.ActionKeyword(resp.Action)).Inc()
	return resp, nil
}

// observeWiring records which protocol states each smtpd service sends and
// says so: in the log at a service's first request and whenever what it
// sends changes (loudly for RCPT-only wiring), in /readyz and the
// mailbrake_policy_services gauge.
func (a *policyAdapter) observeWiring(req *policy.Request) {
	d := a.d
	ch := d.wiring.Observe(req, time.Now())
	if ch.First {
		d.log.Info("policy: first request from a Postfix smtpd service", "service", ch.Now.Service, "protocol_state", req.ProtocolState)
	}
	if !ch.Changed {
		return
	}
	if ch.From != "" && !ch.First {
		d.metrics.policyServices.WithLabelValues(ch.From).Dec()
	}
	d.metrics.policyServices.WithLabelValues(ch.Now.Stages()).Inc()
	switch ch.Now.Stages() {
	case "pending":
	case "rcpt-only":
		d.log.Warn("policy: this Postfix smtpd service asks at RCPT only (check_policy_service in smtpd_recipient_restrictions, not in smtpd_end_of_data_restrictions): messages are charged and rate-limited at RCPT; holds and end-of-message rules come from the milter, or add check_policy_service to smtpd_end_of_data_restrictions",
			"service", ch.Now.Service, "rcpt_requests", ch.Now.RCPT)
	default:
		d.log.Info("policy: Postfix smtpd service wiring", "service", ch.Now.Service, "stages", ch.Now.Stages())
	}
}

func (a *policyAdapter) respond(ctx context.Context, sub *engine.Submission, v engine.Verdict, took time.Duration) policy.Response {
	d := a.d
	log := policy.ConnLogger(ctx) // made once per connection
	if log == nil {
		log = d.log.With("path", "policy")
	}
	d.enforcer.Enforce(ctx, log, sub, v, took, nil)
	return translate.PolicyResponse(sub, v)
}
