package daemon

import (
	"context"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mailbrake/mailbrake/internal/engine"
	"github.com/mailbrake/mailbrake/internal/fingerprint"
	"github.com/mailbrake/mailbrake/internal/policy"
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
		Observe: func(state string, dur time.Duration, err error) {
			if err != nil {
				d.metrics.policyErrors.Inc()
				return
			}
			d.metrics.policyLatency.WithLabelValues(stateLabel(state)).Observe(dur.Seconds())
		},
	}
}

// stateLabel bounds the metric label to Postfix's protocol states.
func stateLabel(s string) string {
	switch s {
	case "CONNECT", "EHLO", "HELO", "MAIL", "RCPT", "DATA", "END-OF-MESSAGE", "VRFY", "ETRN":
		return s
	}
	return "other"
}

// Check implements policy.Handler. Decisions happen at RCPT (per
// recipient) and END-OF-MESSAGE (recipient_count known); every other
// protocol state is answered DUNNO.
func (a *policyAdapter) Check(ctx context.Context, req *policy.Request) (policy.Response, error) {
	d := a.d
	a.observeWiring(req)
	var stage engine.Stage
	switch req.ProtocolState {
	case "RCPT":
		stage = engine.StageRcpt
	case "DATA", "END-OF-MESSAGE":
		// DATA (smtpd_data_restrictions, which zmconfigd copies from
		// zimbraMtaSmtpdDataRestrictions) knows recipient_count like
		// END-OF-MESSAGE, and HOLD there applies to the whole message.
		stage = engine.StageEOM
	default:
		d.metrics.policyRequests.WithLabelValues(stateLabel(req.ProtocolState), "DUNNO").Inc()
		return policy.Dunno(), nil
	}
	addr, _ := netip.ParseAddr(req.ClientAddress)
	account, source, trusted := d.identity.ResolvePolicy(req.SASLUsername, req.Sender, addr)
	sub := &engine.Submission{
		Time:           time.Now(),
		Stage:          stage,
		Path:           engine.PathPolicy,
		Account:        account,
		AccountSource:  source,
		ClientAddress:  addr,
		ClientPort:     clientPort(req.ClientPort),
		TrustedClient:  trusted,
		Client:         fingerprint.Result{Family: fingerprint.FamilyUnknown}, // the policy protocol carries no headers
		Sender:         req.Sender,
		Recipient:      req.Recipient,
		RecipientCount: req.RecipientCount,
		Size:           req.Size,
		QueueID:        req.QueueID,
		Instance:       req.Instance,
		Reinjected:     d.reinjectionListener(req.ServerAddress, req.ServerPort),
	}
	if stage == engine.StageEOM && req.RecipientCount == 1 && req.Recipient != "" {
		sub.Recipients = []string{req.Recipient}
	}
	v, err := d.engine.Evaluate(ctx, sub)
	if err != nil {
		d.metrics.storeErrors.WithLabelValues("counters").Inc()
		d.log.Warn("engine error; on_error verdict applies", "instance", req.Instance, "account", account, "err", err)
	}
	if v.Reinjected {
		d.logReinjected(sub, v)
		d.metrics.policyRequests.WithLabelValues(stateLabel(req.ProtocolState), "DUNNO").Inc()
		return policy.Dunno(), nil
	}
	if v.Undecided && a.relayedLogged.CompareAndSwap(false, true) {
		d.log.Info("policy: mail from trusted networks without SASL is left to the milter, which reads the relay's account header; the policy path answers DUNNO and charges nothing (identity.relayed_on_policy: milter)",
			"client_address", req.ClientAddress, "instance", req.Instance)
	}
	resp := a.respond(ctx, sub, v)
	d.metrics.policyRequests.WithLabelValues(stateLabel(req.ProtocolState), actionKeyword(resp.Action)).Inc()
	return resp, nil
}

// clientPort parses client_port ("unknown" or absent before Postfix 3.0).
func clientPort(s string) uint16 {
	p, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0
	}
	return uint16(p)
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

func actionKeyword(action string) string {
	k, _, _ := strings.Cut(action, " ")
	switch k {
	case "DUNNO", "OK", "HOLD", "DEFER", "DEFER_IF_PERMIT", "REJECT", "WARN":
		return k
	}
	if len(k) == 3 && (k[0] == '4' || k[0] == '5') {
		return k[:1] + "xx"
	}
	return "other"
}

func (a *policyAdapter) respond(ctx context.Context, sub *engine.Submission, v engine.Verdict) policy.Response {
	d := a.d
	log := policy.ConnLogger(ctx) // made once per connection
	if log == nil {
		log = d.log.With("path", "policy")
	}
	d.enforcer.Enforce(ctx, log, sub, v, nil)
	switch v.Action {
	case engine.ActionHold:
		if sub.Stage != engine.StageEOM {
			// Config validation keeps hold rules at eom; be safe anyway.
			return policy.Dunno()
		}
		return policy.Hold("mailbrake: held for review (" + strings.Join(engine.ReasonStrings(v.Reasons), ",") + ")")
	case engine.ActionDefer:
		return policy.Defer(v.Text)
	case engine.ActionReject:
		return policy.Reject(v.Text)
	}
	// allow, and tag: PREPEND is not allowed in smtpd_end_of_data_restrictions,
	// so the policy path logs tags; the milter path adds the header.
	return policy.Dunno()
}
