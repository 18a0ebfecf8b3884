package daemon

import (
	"context"
	"time"

	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/enforce"
	"github.com/mailbrake/mailbrake/internal/engine"
	"github.com/mailbrake/mailbrake/internal/leakscan"
	"github.com/mailbrake/mailbrake/internal/milter"
	"github.com/mailbrake/mailbrake/internal/quarantine"
	"github.com/mailbrake/mailbrake/internal/store"
	"github.com/mailbrake/mailbrake/internal/translate"
)

type milterAdapter struct{ d *Daemon }

func (d *Daemon) milterServer() *milter.Server {
	onErr := milter.Decision{Kind: milter.TempFail, Code: 451, Text: "4.3.0 Temporary local problem, try again later"}
	if d.cfg.Milter.OnError == config.MilterAccept {
		onErr = milter.Decision{Kind: milter.Accept}
	}
	return &milter.Server{
		Handler:      &milterAdapter{d: d},
		Logger:       d.log.With("path", "milter"),
		PreviewLimit: d.bodyLimit(),
		OnError:      onErr,
		Observe: func(dur time.Duration, kind milter.DecisionKind, err error) {
			d.metrics.milterLatency.Observe(dur.Seconds())
			d.metrics.milterMessages.WithLabelValues(kind.String()).Inc()
		},
	}
}

// EndOfMessage implements milter.Handler.
func (a *milterAdapter) EndOfMessage(ctx context.Context, msg *milter.Message) (milter.Decision, error) {
	d := a.d
	sub := d.translate.MilterSubmission(msg)
	account := sub.Account
	if sub.Reinjected {
		// Back from a content filter: decided on its first pass.
		v, _ := d.engine.Evaluate(ctx, sub)
		d.logReinjected(sub, v)
		return milter.Decision{Kind: milter.Accept}, nil
	}
	if (d.pwleak != nil || d.dets.Campaign != nil) && translate.ContentScanned(sub) {
		sub.Body = translate.RawMessage(msg)
		defer clear(sub.Body)
	}
	defer func() {
		for _, s := range sub.Secrets {
			clear(s)
		}
	}()
	start := time.Now()
	v, err := d.engine.Evaluate(ctx, sub)
	took := time.Since(start)
	if err != nil {
		d.metrics.storeErrors.WithLabelValues("counters").Inc()
		d.log.Warn("engine error; on_error verdict applies", "queue_id", msg.QueueID, "account", account, "err", err)
	}
	if v.Reinjected {
		// Recognised by its Received header (engine.reinjectionOf).
		d.logReinjected(sub, v)
		return milter.Decision{Kind: milter.Accept}, nil
	}
	log := d.log.With("path", "milter", "conn", msg.ConnID)
	d.enforcer.Enforce(ctx, log, sub, v, took, func() enforce.Content {
		return enforce.Content{Headers: leakscan.Mask(translate.HeaderBlock(msg), sub.Secrets), Preview: leakscan.Mask(translate.TextPreview(msg, d.preview), sub.Secrets)}
	})
	return translate.MilterDecision(sub, v), nil
}

// bodyLimit is how much of each body the milter keeps: the preview, or
// more when the password-leak check reads the whole message.
func (d *Daemon) bodyLimit() int {
	n := d.cfg.Quarantine.PreviewBytes
	if d.pwleak != nil {
		n = max(n, d.cfg.PasswordLeak.MaxScanBytes)
	}
	return n
}

// logReinjected logs a re-injected message at debug: it is counted under
// mailbrake_reinjected_total and was logged on its first pass.
func (d *Daemon) logReinjected(sub *engine.Submission, v engine.Verdict) {
	d.metrics.reinjected.WithLabelValues(string(sub.Path)).Inc()
	d.log.Debug("re-injected message: decided on its first pass; not charged or held again", "path", sub.Path,
		"queue_id", sub.QueueID, "instance", sub.Instance, "direction", sub.Direction, "received_ids", sub.ReceivedIDs, "learned", len(v.Findings))
}

// expectReinjection tells the engine that a released message may come back
// through smtpd from a content filter (see engine.Expect).
func (d *Daemon) expectReinjection(h *store.Hold) {
	dir := engine.Outbound
	if h.Account == engine.Unauthenticated {
		dir = engine.Inbound
	}
	d.engine.Expect(h.QueueID, h.Sender, quarantine.HeaderField(h.Headers, "Message-ID"), h.Recipients, dir, time.Now())
}
