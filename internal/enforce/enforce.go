// Package enforce carries out the engine's verdicts: the one per-message
// tail both protocol adapters share. For a submission and its verdict it
// logs the decision (and dry-run, shadow and evidence findings), keeps it
// for `account show`, records a hold with what the path could see, asks for
// the account state change a score crossing asked for, and reports the
// acted-on findings for incidents. The adapters (internal/daemon) differ
// only in what they can see and how they answer the MTA; they never decide
// or record anything themselves.
//
// It does not talk to the MTA, open incidents or change states itself: the
// hold is recorded through Holds (ops), state changes and incident reports
// go to queues the daemon drains off the request path.
package enforce

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/engine"
	"github.com/mailbrake/mailbrake/internal/fingerprint"
	"github.com/mailbrake/mailbrake/internal/holdspool"
	"github.com/mailbrake/mailbrake/internal/leakscan"
	"github.com/mailbrake/mailbrake/internal/ops"
	"github.com/mailbrake/mailbrake/internal/store"
)

// Holds records holds off the request path (ops.HoldWriter): done is
// called once the hold is written.
type Holds interface {
	// RecordReport records h; report is what done will report for the
	// account's incident, kept with the hold in case this process is
	// killed before the store takes it (HoldWriter spools it).
	RecordReport(h *store.Hold, report []holdspool.Finding, done func(stored *store.Hold, created bool, err error))
}

// Metrics counts what the enforcer does; labels come from fixed sets.
type Metrics interface {
	Verdict(path, action, reason string)
	Shadow(path, action string)
	Held(path string)
	StoreError(op string)
}

// Enforcer carries out verdicts. Every field but Log may be nil.
type Enforcer struct {
	Log     *slog.Logger
	Holds   Holds
	Metrics Metrics
	// Verdicts keeps each account's recent verdicts for account show.
	Verdicts *ops.Verdicts
	// Escalate queues an account state change; it must not block.
	Escalate func(account string, to store.AccountState, reason string)
	// Report queues findings for the incident worker; it must not block.
	Report func(account string, findings []ops.Finding)
	// ScoreWindow is accounts.score_window in force (a reload changes
	// it), quoted in state changes.
	ScoreWindow func() time.Duration
	// Incidents says whether account response is on: without it no
	// findings are reported.
	Incidents bool
	// LogAllowed logs allowed verdicts too (log.verdicts: all): one line
	// per decision.
	LogAllowed bool
}

// Content is what a path saw of a held message beyond the envelope, masked
// of secrets: the header block and a text preview (milter path).
type Content struct {
	Headers, Preview string
}

// Enforce carries out v for sub. log carries the adapter's connection and
// queue ids; took is how long the decision took. content, when not nil, is
// called only when the message is held. A hold is recorded off the request
// path; its findings are reported once its record is written, with the
// record's id.
func (e *Enforcer) Enforce(ctx context.Context, log *slog.Logger, sub *engine.Submission, v engine.Verdict, took time.Duration, content func() Content) {
	if log == nil {
		log = e.Log
	}
	e.logVerdict(log, sub, v, took)
	e.keepVerdict(sub, v)
	e.escalate(sub, v)
	if v.Action == engine.ActionHold && sub.Stage == engine.StageEOM && e.Holds != nil {
		var c Content
		if content != nil {
			c = content()
		}
		e.recordHold(log, sub, v, c)
		return
	}
	e.report(sub.Account, sub.Direction, sub.QueueID, v, 0)
}

// logVerdict writes one line per message that has anything to say: every
// non-allow verdict (every verdict with LogAllowed), every shadow verdict,
// and every message with dry-run or evidence findings — those ride on the
// same line (dry_run, evidence) instead of a line each, so a heavy sender
// in learning mode costs one line per message, not four. It counts the
// verdicts.
func (e *Enforcer) logVerdict(log *slog.Logger, sub *engine.Submission, v engine.Verdict, took time.Duration) {
	var dry, noted int
	for i := range v.Findings {
		switch f := &v.Findings[i]; {
		case f.DryRun:
			dry++
		case f.Action == engine.ActionAllow:
			// Evidence that decides nothing (client-header-mismatch, a
			// new client family): logged so the account's story is
			// complete.
			noted++
		}
	}
	shadow := v.Shadow != v.Action
	if e.Metrics != nil {
		switch {
		case shadow:
			e.Metrics.Shadow(string(sub.Path), v.Shadow.String())
		case v.Action != engine.ActionAllow:
			for _, r := range v.Reasons {
				e.Metrics.Verdict(string(sub.Path), v.Action.String(), string(r))
			}
		}
	}
	if !shadow && v.Action == engine.ActionAllow && !e.LogAllowed && dry == 0 && noted == 0 {
		return
	}
	ctx := context.Background()
	if !log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	msg := "verdict"
	attrs := make([]slog.Attr, 0, 20)
	attrs = append(attrs, slog.String("stage", string(sub.Stage)), slog.String("action", v.Action.String()))
	if shadow {
		msg = "shadow verdict (not acted on)"
		attrs = append(attrs, slog.String("would", v.Shadow.String()))
	}
	attrs = append(attrs, slog.Any("reasons", engine.ReasonStrings(v.Reasons)),
		slog.String("queue_id", sub.QueueID), slog.String("instance", sub.Instance), slog.String("account", sub.Account),
		slog.String("account_source", string(sub.AccountSource)), slog.String("client_family", string(sub.Client.Family)),
		slog.Int("recipients", sub.RecipientCount), slog.Int64("messages_1h", v.Totals.Messages1h),
		slog.Int64("recipients_1h", v.Totals.Recipients1h), slog.Duration("took", took.Round(time.Microsecond)))
	if dry > 0 {
		attrs = append(attrs, slog.String("dry_run", findingList(v.Findings, true)))
	}
	if noted > 0 {
		attrs = append(attrs, slog.String("evidence", findingList(v.Findings, false)))
	}
	log.LogAttrs(ctx, slog.LevelInfo, msg, attrs...)
}

// findingList formats the dry-run findings (dry) or the evidence findings
// of a verdict for its log line: "reason (rule) would hold: evidence" or
// "reason (rule) score 2: evidence", separated by "; ".
func findingList(fs []engine.Finding, dry bool) string {
	var b strings.Builder
	for i := range fs {
		f := &fs[i]
		if dry != f.DryRun || (!dry && f.Action != engine.ActionAllow) {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString(string(f.Reason))
		if f.Rule != "" && f.Rule != string(f.Reason) {
			b.WriteString(" (")
			b.WriteString(f.Rule)
			b.WriteString(")")
		}
		if dry {
			b.WriteString(" would ")
			b.WriteString(f.Action.String())
		} else if f.Score != 0 {
			fmt.Fprintf(&b, " score %d", f.Score)
		}
		if f.Evidence != "" {
			b.WriteString(": ")
			b.WriteString(f.Evidence)
		}
	}
	return b.String()
}

// keepVerdict keeps an account's end-of-message verdicts that are not a
// plain allow, for `account show` and the web UI.
func (e *Enforcer) keepVerdict(sub *engine.Submission, v engine.Verdict) {
	if e.Verdicts == nil || sub.Stage != engine.StageEOM || sub.Account == engine.Unauthenticated {
		return
	}
	var dry []string
	for _, f := range v.Findings {
		if f.DryRun {
			dry = append(dry, string(f.Reason))
		}
	}
	if v.Action == engine.ActionAllow && v.Shadow == v.Action && len(dry) == 0 {
		return
	}
	r := api.VerdictRecord{Time: sub.Time.UTC(), Path: string(sub.Path), QueueID: sub.QueueID, Action: v.Action.String(),
		Reasons: engine.ReasonStrings(v.Reasons), DryRun: dry, Recipients: sub.RecipientCount}
	if v.Shadow != v.Action {
		r.Would = v.Shadow.String()
	}
	e.Verdicts.Add(sub.Account, r)
}

// escalate queues the state change the verdict asks for.
func (e *Enforcer) escalate(sub *engine.Submission, v engine.Verdict) {
	if v.Escalate == "" || e.Escalate == nil {
		return
	}
	var reasons []string
	for _, f := range v.Findings {
		if !f.DryRun && f.Score > 0 {
			reasons = append(reasons, fmt.Sprintf("%s (%s %d)", f.Reason, f.Family, f.Score))
		}
	}
	e.Escalate(sub.Account, v.Escalate, fmt.Sprintf("score %d from %d messages in %s; this message: %s", v.Score, v.ScoredMessages, e.ScoreWindow(), strings.Join(reasons, ", ")))
}

// recordHold hands the hold record to the writer; once written it is
// logged and counted, and the findings are reported with its id. A
// failure is logged and counted: the message stays held in Postfix
// regardless, and the queue sync records it.
func (e *Enforcer) recordHold(log *slog.Logger, sub *engine.Submission, v engine.Verdict, c Content) {
	h := &store.Hold{
		QueueID:        sub.QueueID,
		Path:           string(sub.Path),
		Account:        sub.Account,
		Sender:         sub.Sender,
		Recipients:     append([]string{}, sub.Recipients...),
		RecipientCount: sub.RecipientCount,
		Subject:        leakscan.Mask(sub.Subject, sub.Secrets),
		Client:         sub.Client.Client,
		ClientFamily:   familyForHold(sub.Client.Family),
		Reasons:        engine.ReasonStrings(v.Reasons),
		Size:           sub.Size,
		Headers:        c.Headers,
		Preview:        c.Preview,
		HeldAt:         sub.Time.UTC(),
	}
	if sub.ClientAddress.IsValid() {
		h.ClientAddress = sub.ClientAddress.String()
	}
	h.Prints = append([]string(nil), sub.Prints...)
	account, dir, qid, path := sub.Account, sub.Direction, sub.QueueID, string(sub.Path)
	var spooled []holdspool.Finding
	for _, f := range e.findings(account, dir, qid, v, 0) {
		spooled = append(spooled, holdspool.Finding{Reason: f.Reason, Detail: f.Detail})
	}
	e.Holds.RecordReport(h, spooled, func(stored *store.Hold, created bool, err error) {
		if err != nil {
			if e.Metrics != nil {
				e.Metrics.StoreError("hold")
			}
			log.Error("recording a hold failed; the message is on hold in Postfix", "queue_id", qid, "account", account, "err", err)
			e.report(account, dir, qid, v, 0)
			return
		}
		if created && e.Metrics != nil {
			// Once per message: the other path's hold of it merged into this.
			e.Metrics.Held(path)
		}
		log.Info("message held for review", "hold", stored.ID, "queue_id", qid, "account", account, "reasons", stored.Reasons)
		e.report(account, dir, qid, v, stored.ID)
	})
}

// familyForHold leaves the family empty when this path could not see it, so
// a hold of the same message by the milter path fills it in.
func familyForHold(f fingerprint.Family) string {
	if f == fingerprint.FamilyUnknown {
		return ""
	}
	return string(f)
}

// report queues the message's acted-on findings for the incident worker.
// Shadow verdicts, dry-run findings, inbound mail and evidence without a
// score open no incident.
func (e *Enforcer) report(account string, dir engine.Direction, queueID string, v engine.Verdict, holdID int64) {
	if fs := e.findings(account, dir, queueID, v, holdID); len(fs) > 0 {
		e.Report(account, fs)
	}
}

// findings are what report reports of v: none for inbound mail, shadow
// verdicts or without account response; no dry-run finding, nor evidence
// without a score.
func (e *Enforcer) findings(account string, dir engine.Direction, queueID string, v engine.Verdict, holdID int64) []ops.Finding {
	if !e.Incidents || e.Report == nil || v.Shadow != v.Action || account == engine.Unauthenticated || dir == engine.Inbound {
		return nil
	}
	var fs []ops.Finding
	for _, f := range v.Findings {
		if f.DryRun || f.Action == engine.ActionAllow && f.Score == 0 {
			continue
		}
		fs = append(fs, ops.Finding{Reason: string(f.Reason), Detail: f.Evidence, HoldID: holdID, QueueID: queueID})
	}
	return fs
}
