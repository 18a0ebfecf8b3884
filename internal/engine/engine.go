package engine

import (
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/store"
	"github.com/mailbrake/mailbrake/internal/verdict"
)

// Options configures an Engine.
type Options struct {
	Rules    []config.Rule
	Counters store.Counters
	// OnError is the action when counters fail: ActionAllow (fail open)
	// or ActionDefer.
	OnError Action
	Logger  *slog.Logger
	// States gives each account's state; nil means every account is normal.
	States StateSource
	// Scores keeps finding scores per account (a store.Counters whose
	// message count is the score); nil turns automatic escalation off.
	Scores        store.Counters
	WatchScore    int64
	RestrictScore int64
	ScoreWindow   time.Duration // time.Hour or 24h
	// Shadow: decide and report, but allow everything.
	Shadow bool
	// Detectors report findings beyond the declarative rules.
	Detectors []Detector
	// Trust, when set, names accounts an admin trusts for a while with a
	// client family ("release and trust"): their rule and volume findings
	// are reported as dry-run. Findings about content and phish still act.
	Trust TrustSource
}

// TrustSource answers whether an account is trusted with a client family.
type TrustSource interface {
	Trusted(account, family string, at time.Time) (until time.Time, ok bool)
}

// Detector is one signal. It reports findings; its configuration (applied
// when it is built) sets each finding's Action, Score and DryRun.
type Detector interface {
	// Inbound observes a message arriving from outside at end of message
	// (for example to remember phish) and may report findings (a tag).
	Inbound(ctx context.Context, sub *Submission) []Finding
	// Outbound checks a message sent by an account at end of message.
	Outbound(ctx context.Context, sub *Submission) []Finding
}

// ReinjectionNoter is a Detector that wants to know that re-injected mail
// flows (a content filter hands messages back through a listener mailbrake
// sees): NoteReinjection is called for every re-injected message, outbound
// ones too, whose Inbound is not called.
type ReinjectionNoter interface {
	NoteReinjection()
}

// StateSource answers an account's current state on the hot path.
type StateSource interface {
	AccountState(account string) store.AccountState
}

// Engine evaluates submissions. It is safe for concurrent use.
type Engine struct {
	// t is what a reload can change (Retune); read once per decision.
	t          atomic.Pointer[tuned]
	counters   store.Counters
	log        *slog.Logger
	book       book
	deferText  string
	rejectText string
	o          Options
	// Detectors split: learners run once per queue ID, lookups on every path.
	learners, lookups []Detector
	// policyRcptAt is when the policy path last checked a RCPT (Unix
	// nanoseconds; 0: never): rcptUnchecked.
	policyRcptAt atomic.Int64
}

// maxTrackedRecipients bounds the recipients remembered per in-flight
// message for hold records; the count stays exact.
const maxTrackedRecipients = 1000

// New compiles the rules and returns an engine.
func New(o Options) (*Engine, error) {
	rules, errs := Compile(o.Rules)
	if len(errs) > 0 {
		return nil, errs
	}
	if o.Counters == nil {
		return nil, fmt.Errorf("engine: no counters")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	e := &Engine{
		counters:   o.Counters,
		log:        o.Logger,
		o:          o,
		deferText:  "4.7.1 Sending limit reached, try again later",
		rejectText: "5.7.1 Message refused by local policy",
	}
	e.t.Store(&tuned{rules: rules, onError: o.OnError, shadow: o.Shadow, watch: o.WatchScore, restrict: o.RestrictScore, window: o.ScoreWindow})
	for _, d := range o.Detectors {
		if l, ok := d.(Learner); ok && l.Learns() {
			e.learners = append(e.learners, d)
		} else {
			e.lookups = append(e.lookups, d)
		}
	}
	e.book.seed = maphash.MakeSeed()
	return e, nil
}

// tuned is the part of the configuration a reload can change while mail
// flows: the rules, the on_error verdict, shadow mode and the score
// thresholds. A decision reads it once.
type tuned struct {
	rules           []rule
	onError         Action
	shadow          bool
	watch, restrict int64
	window          time.Duration
}

// Tuning is what Retune changes; the fields are Options' of the same name.
type Tuning struct {
	Rules         []config.Rule
	OnError       Action
	Shadow        bool
	WatchScore    int64
	RestrictScore int64
	ScoreWindow   time.Duration
}

// Retune compiles t's rules and makes them, and t's other settings, what
// every later decision uses; on an error nothing changes. Learned state
// (counters, the message book, the detectors) is kept.
func (e *Engine) Retune(t Tuning) error {
	rules, errs := Compile(t.Rules)
	if len(errs) > 0 {
		return errs
	}
	e.t.Store(&tuned{rules: rules, onError: t.OnError, shadow: t.Shadow, watch: t.WatchScore, restrict: t.RestrictScore, window: t.ScoreWindow})
	return nil
}

// Evaluate decides about a submission. At StageRcpt it checks one
// recipient against the counters without charging them; at StageEOM it
// charges the message once (per queue ID across both paths) and evaluates
// the end-of-message rules. On a counter error the configured on_error
// verdict is returned with ReasonEngineError, together with the error.
func (e *Engine) Evaluate(ctx context.Context, sub *Submission) (Verdict, error) {
	t := e.t.Load()
	if !sub.Reinjected && sub.Path == PathMilter && len(sub.ReceivedIDs) > 0 && sub.TrustedClient && sub.AccountSource != SourceSASL {
		// A trusted client handing back a message this engine saw: a
		// content filter's re-injection on a listener not configured as
		// one.
		if orig := e.book.reinjectionOf(sub); orig != nil {
			sub.Reinjected = true
			orig.mu.Lock()
			sub.Direction = orig.direction
			orig.mu.Unlock()
		}
	}
	if sub.Reinjected {
		return e.evaluateReinjected(ctx, sub), nil
	}
	m := e.book.find(sub)
	if m != nil {
		if replaced := m.bind(sub); replaced != "" {
			e.log.Warn("message identity replaced by a stronger source; the earlier account was charged for it too",
				"queue_id", sub.QueueID, "instance", sub.Instance, "path", sub.Path, "account", sub.Account, "source", sub.AccountSource, "replaced", replaced)
		}
	} else {
		// The detectors key their per-account state by this string: a
		// copy of its own, not a slice of the whole request (bind does
		// the same for a message in the book).
		sub.Account = strings.Clone(sub.Account)
	}
	if sub.AccountSource == SourceRelayed {
		// A trusted relay without SASL: only the milter, which reads the
		// relay's account header, can name the account. This path neither
		// charges nor decides on a guess.
		return Verdict{Action: ActionAllow, Shadow: ActionAllow, AccountState: store.AccountNormal, Undecided: true}, nil
	}
	if sub.Direction == "" {
		sub.Direction = DirectionOf(sub.AccountSource)
	}
	if m != nil && sub.Path == PathMilter {
		m.remember(sub)
	}
	if sub.Direction == Inbound {
		return e.evaluateInbound(ctx, sub, t), nil
	}
	f := facts{sub: sub}
	var err error
	key := sub.QueueID
	if m != nil {
		key = m.key
	}
	// pre is the charge made with the RCPT's read (store.PeekCharger),
	// taken back if the recipient is deferred or rejected.
	var pre struct {
		pc     store.PeekCharger
		dm, dr int64
	}
	// An admin's trust of the account with this client makes its rule
	// and volume findings dry runs, whichever stage they come from.
	trusted := func(fd Finding) Finding { return fd }
	if e.o.Trust != nil {
		if until, ok := e.o.Trust.Trusted(sub.Account, string(sub.Client.Family), sub.Time); ok {
			trusted = func(fd Finding) Finding {
				if !fd.DryRun {
					fd.DryRun = true
					fd.Evidence += " (account trusted with " + string(sub.Client.Family) + " until " + until.UTC().Format(time.RFC3339) + ")"
				}
				return fd
			}
		}
	}
	// rcptFindings: what the RCPT-stage rules found at end of message
	// without deferring (dry runs), for a message the policy path did
	// not check (rcptUnchecked).
	var rcptFindings []Finding
	switch sub.Stage {
	case StageRcpt:
		if at := sub.Time.UnixNano(); sub.Path == PathPolicy && at-e.policyRcptAt.Load() > int64(time.Second) {
			e.policyRcptAt.Store(at) // at most once a second: one cache line for every core
		}
		n := 1
		var chargedMsgs, chargedRcpts int64
		if m != nil {
			chargedMsgs, chargedRcpts = m.chargedSoFar()
			n = m.countSoFar() + 1
		}
		if pc, ok := e.counters.(store.PeekCharger); ok && m != nil {
			// One round trip: charged now, as if accepted; the totals are
			// from before the charge.
			dm, dr := m.reserve(1, int64(n))
			var charged bool
			f.totals, charged, err = pc.PeekCharge(ctx, sub.Account, sub.Time, dm, dr)
			if charged {
				pre.pc, pre.dm, pre.dr = pc, dm, dr
			} else {
				m.unreserve(dm, dr)
			}
		} else {
			f.totals, err = e.counters.Peek(ctx, sub.Account, sub.Time)
		}
		// The rules see the account's messages before this one, and its
		// recipients including those already accepted for this message
		// and this one: a 60-recipient message from an account at 480 of
		// 500 is over the limit at its 21st RCPT. What this message was
		// charged at earlier RCPTs is taken out and added back as n.
		f.totals.Messages1h = max(0, f.totals.Messages1h-chargedMsgs)
		f.totals.Messages24h = max(0, f.totals.Messages24h-chargedMsgs)
		f.totals.Recipients1h = max(0, f.totals.Recipients1h-chargedRcpts) + int64(n)
		f.totals.Recipients24h = max(0, f.totals.Recipients24h-chargedRcpts) + int64(n)
	case StageEOM:
		if m != nil {
			if rc := m.recipients(); len(sub.Recipients) == 0 {
				sub.Recipients = rc
			}
		}
		if sub.RecipientCount < len(sub.Recipients) {
			sub.RecipientCount = len(sub.Recipients)
		}
		if e.rcptUnchecked(sub, m) {
			// The RCPT-stage rules (rate limits that defer) as the last
			// RCPT would have seen them: the account's messages before
			// this one, its recipients with this message's. A message
			// they defer or reject is not sent: nothing is charged,
			// learned or scored, as for recipients deferred at RCPT.
			before, perr := e.counters.Peek(ctx, sub.Account, sub.Time)
			if perr != nil {
				err = perr
				break
			}
			rf := facts{sub: sub, totals: before}
			rf.totals.Recipients1h += int64(sub.RecipientCount)
			rf.totals.Recipients24h += int64(sub.RecipientCount)
			rv := Verdict{Action: ActionAllow, Totals: before, AccountState: store.AccountNormal}
			e.applyRules(t, &rf, StageRcpt, Outbound, &rv, func(fd Finding) Finding {
				// The policy path never scores RCPT-stage findings.
				fd = trusted(fd)
				fd.Score = 0
				return fd
			})
			if rv.Action >= ActionDefer && !t.shadow {
				if e.o.States != nil {
					rv.AccountState = e.o.States.AccountState(sub.Account)
				}
				return e.finish(t, rv), nil
			}
			// Dry runs, or a deferral shadow mode lets through (the
			// message is sent, so charged as any).
			rcptFindings = rv.Findings
		}
		f.totals, err = e.charge(ctx, sub, m, key, 1, int64(sub.RecipientCount))
	default:
		return Verdict{}, fmt.Errorf("engine: unknown stage %q", sub.Stage)
	}
	if err != nil {
		v := Verdict{Action: t.onError, Reasons: []Reason{ReasonEngineError}, Findings: []Finding{{Rule: "engine", Reason: ReasonEngineError, Action: t.onError}}}
		if t.onError == ActionDefer {
			v.Text = "4.3.0 Temporary local problem, try again later"
		}
		return v, fmt.Errorf("counters: %w", err)
	}
	v := Verdict{Action: ActionAllow, Totals: f.totals, AccountState: store.AccountNormal}
	if e.o.States != nil && sub.Account != Unauthenticated {
		v.AccountState = e.o.States.AccountState(sub.Account)
	}
	for _, fd := range rcptFindings {
		v.add(fd)
	}
	if sub.Stage == StageEOM && v.AccountState.Rank() >= store.AccountRestricted.Rank() {
		r := ReasonAccountRestricted
		if v.AccountState == store.AccountLocked {
			r = ReasonAccountLocked
		}
		v.Findings = append(v.Findings, Finding{Rule: "account-state", Reason: r, Family: verdict.State, Action: ActionHold, Evidence: "account_state=" + string(v.AccountState)})
		v.Action, v.Reasons = ActionHold, []Reason{r}
	}
	if sub.Stage == StageEOM {
		// Learners first: the novelty detector fills sub.Novelty for the
		// other detectors and the rules.
		for _, fd := range e.runLearners(ctx, sub, m) {
			v.add(trusted(fd))
		}
		for _, d := range e.lookups {
			for _, fd := range d.Outbound(ctx, sub) {
				v.add(fd)
			}
		}
	}
	e.applyRules(t, &f, sub.Stage, Outbound, &v, trusted)
	if sub.Stage == StageEOM && e.o.Scores != nil && sub.Account != Unauthenticated {
		// The message's score: each family's highest finding, once, over
		// what both paths reported. Findings driven by the same
		// recipients (novelty, baseline, rate rules) are one piece of
		// evidence, not several.
		fams := FamilyScores(v.Findings)
		if m != nil {
			fams = m.addScores(v.Findings)
		}
		e.scoreAndEscalate(ctx, t, sub, &v, key, fams)
	}
	if pre.pc != nil {
		if v.Action < ActionDefer {
			m.noteRecipient(sub.Recipient)
		} else if pre.dm > 0 || pre.dr > 0 {
			// A deferred or rejected recipient is not sent and not
			// charged: the charge made with the read is taken back.
			m.unreserve(pre.dm, pre.dr)
			acct, inst := sub.Account, sub.Instance
			pre.pc.Refund(ctx, acct, sub.Time, pre.dm, pre.dr, func(rerr error) {
				if rerr != nil {
					e.log.Warn("taking back the charge of a deferred recipient failed; the account is counted one recipient high for the hour", "account", acct, "instance", inst, "err", rerr)
				}
			})
		}
	} else if sub.Stage == StageRcpt && v.Action < ActionDefer && m != nil {
		// Charge at RCPT too: many sites wire the policy service at RCPT
		// only, and END-OF-MESSAGE then never comes. The message's
		// charges are amounts so far (store.Counters), so the charge at
		// end of message, on either path, adds only what RCPT missed.
		// A deferred or rejected recipient is not sent and not charged.
		n := int64(m.noteRecipient(sub.Recipient))
		if a, ok := e.counters.(store.AsyncCharger); ok {
			// Nothing here needs the totals after the charge: shared
			// counters send it with the next pipeline, and the next
			// request's Peek (after it, in order) sees it.
			dm, dr := m.reserve(1, n)
			acct, inst := sub.Account, sub.Instance
			if dm > 0 || dr > 0 {
				a.ChargeAsync(ctx, acct, "", sub.Time, dm, dr, func(cerr error) {
					if cerr != nil {
						m.unreserve(dm, dr)
						e.log.Warn("charging at RCPT failed", "account", acct, "instance", inst, "err", cerr)
					}
				})
			}
		} else if _, cerr := e.charge(ctx, sub, m, key, 1, n); cerr != nil {
			e.log.Warn("charging at RCPT failed", "account", sub.Account, "instance", sub.Instance, "err", cerr)
		}
	}
	return e.finish(t, v), nil
}

// finish applies shadow mode and the default reply text.
func (e *Engine) finish(t *tuned, v Verdict) Verdict {
	if t.shadow {
		v.Shadow, v.Action, v.Escalate = v.Action, ActionAllow, ""
	} else {
		v.Shadow = v.Action
	}
	if v.Text == "" {
		switch v.Action {
		case ActionDefer:
			v.Text = e.deferText
		case ActionReject:
			v.Text = e.rejectText
		}
	}
	return v
}

// rcptUnchecked reports whether a message at end of message on the
// milter had none of its recipients checked at RCPT: every message of a
// milter-only site — Zimbra, whose zmconfigd drops a policy service —
// and relayed webmail, whose account the policy path cannot read. The
// message book (which links the policy path's requests to the milter's
// message, as it does to charge a message once) tells of the RCPTs it
// has; the time of the policy path's last RCPT tells whether it checks
// any here.
func (e *Engine) rcptUnchecked(sub *Submission, m *message) bool {
	if sub.Path != PathMilter || sub.Direction != Outbound || sub.Account == Unauthenticated {
		return false
	}
	if m != nil && m.countSoFar() > 0 {
		return false
	}
	if sub.AccountSource == SourceHeader {
		return true // the policy path cannot name relayed webmail's account
	}
	// No RCPT of it in the book: on a site whose policy path checks RCPTs
	// (it did in the last hour) the book lost the message (a DATA phase
	// longer than its two generations) or the policy path answered
	// without deciding; either way checking again could count its
	// recipients twice. Elsewhere (Zimbra) nothing checked them.
	last := e.policyRcptAt.Load()
	return last == 0 || sub.Time.Sub(time.Unix(0, last)) > time.Hour
}

func evidence(r *rule, f *facts) string {
	var b strings.Builder
	for i, c := range r.conds {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(c.fact)
		b.WriteByte('=')
		v := c.describe(f)
		if len(v) > 80 {
			v = v[:80] + "…"
		}
		b.WriteString(v)
	}
	return b.String()
}

// ReasonStrings converts reasons to strings.
func ReasonStrings(rs []Reason) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return out
}

// add merges a finding into the verdict (its score is counted by family,
// FamilyScores).
func (v *Verdict) add(fd Finding) {
	v.Findings = append(v.Findings, fd)
	if fd.DryRun {
		return
	}
	switch {
	case fd.Action > v.Action:
		v.Action = fd.Action
		v.Reasons = append(v.Reasons[:0], fd.Reason)
	case fd.Action == v.Action && fd.Action != ActionAllow && !slices.Contains(v.Reasons, fd.Reason):
		v.Reasons = append(v.Reasons, fd.Reason)
	}
}

// applyRules adds a finding for every rule of stage and direction dir that
// matches.
func (e *Engine) applyRules(t *tuned, f *facts, stage Stage, dir Direction, v *Verdict, adjust func(Finding) Finding) {
	for i := range t.rules {
		r := &t.rules[i]
		if r.stage != stage || !r.on(dir) {
			continue
		}
		matched := true
		for _, c := range r.conds {
			if !c.test(f) {
				matched = false
				break
			}
		}
		if !matched {
			continue
		}
		before := v.Action
		v.add(adjust(Finding{Rule: r.name, Reason: r.reason, Family: r.family, Action: r.action, DryRun: r.dryRun, Score: r.score, Evidence: evidence(r, f), Day: r.day}))
		if v.Action > before {
			v.Text = r.text
		}
	}
}

// evaluateReinjected handles a message a content filter handed back: it was
// decided on its first pass, so nothing is charged, held or escalated
// again. A message that came from outside is shown to the inbound
// detectors once more, since the filter has now added its tags (phish
// memory learns them); their findings are not acted on.
func (e *Engine) evaluateReinjected(ctx context.Context, sub *Submission) Verdict {
	v := Verdict{Action: ActionAllow, Shadow: ActionAllow, AccountState: store.AccountNormal, Reinjected: true}
	if sub.Stage != StageEOM {
		return v
	}
	for _, d := range e.o.Detectors {
		if n, ok := d.(ReinjectionNoter); ok {
			n.NoteReinjection()
		}
	}
	if sub.Direction == "" {
		sub.Direction = e.book.directionOf(sub)
	}
	if sub.Direction == "" {
		// Listener-recognised and not in the book (a release days
		// later, a restart): mail the relay named no account for came
		// from outside.
		sub.Direction = Outbound
		if sub.AccountSource == SourceUnauthenticated || sub.AccountSource == SourceSender || sub.AccountSource == SourceRelayed {
			sub.Direction = Inbound
		}
	}
	if sub.Direction != Inbound {
		return v
	}
	for _, d := range e.o.Detectors {
		for _, fd := range d.Inbound(ctx, sub) {
			fd.DryRun = true
			v.Findings = append(v.Findings, fd)
		}
	}
	return v
}

// evaluateInbound handles mail from outside: no counters, account states
// or scores (the account is unauthenticated); the detectors observe it and
// the inbound rules apply.
func (e *Engine) evaluateInbound(ctx context.Context, sub *Submission, t *tuned) Verdict {
	v := Verdict{Action: ActionAllow, AccountState: store.AccountNormal}
	if sub.Stage != StageEOM {
		return v
	}
	for _, d := range e.o.Detectors {
		for _, fd := range d.Inbound(ctx, sub) {
			v.add(fd)
		}
	}
	f := facts{sub: sub}
	e.applyRules(t, &f, StageEOM, Inbound, &v, func(fd Finding) Finding { return fd })
	if t.shadow {
		v.Shadow, v.Action = v.Action, ActionAllow
	} else {
		v.Shadow = v.Action
	}
	if v.Action == ActionReject {
		v.Text = e.rejectText
	} else if v.Action == ActionDefer {
		v.Text = e.deferText
	}
	return v
}

// FamilyScores is a message's score by family: each family's highest
// acted-on finding. A finding without a family is a family of its own.
func FamilyScores(fs []Finding) map[Family]int64 {
	out := map[Family]int64{}
	for _, f := range fs {
		if f.DryRun || f.Score <= 0 {
			continue
		}
		fam := f.Family
		if fam == "" {
			fam = Family("reason:" + string(f.Reason))
		}
		out[fam] = max(out[fam], int64(f.Score))
	}
	return out
}

// charge charges the message's amounts so far (msgs, rcpts) to the
// account. A message in the book is charged its increments, reserved on
// the message, so that memory for deduplication stays bounded by the book
// however fast mail flows; one without (no instance, no queue ID) is
// charged under key.
func (e *Engine) charge(ctx context.Context, sub *Submission, m *message, key string, msgs, rcpts int64) (store.Totals, error) {
	if m == nil {
		return e.counters.Charge(ctx, sub.Account, key, sub.Time, msgs, rcpts)
	}
	dm, dr := m.reserve(msgs, rcpts)
	t, err := e.counters.Charge(ctx, sub.Account, "", sub.Time, dm, dr)
	if err != nil {
		m.unreserve(dm, dr)
	}
	return t, err
}

// scoreFamilyKey is the Scores counter key of one family's share of an
// account's score.
func scoreFamilyKey(account string, fam Family) string { return account + "\x00" + string(fam) }

// hourlyFamilies score at most once an hour per account: their findings
// repeat for every message of one burst or run.
var hourlyFamilies = []Family{verdict.Volume, verdict.Campaign}

// scoreAndEscalate adds this message's finding score to the account's
// window (once per queue ID across both paths; the second amount counts
// the messages that scored) and asks for a state change when a threshold
// is crossed. One message, whatever it scores, puts the account on watch
// at most: a restriction needs evidence from more than one message (a
// class announcement is one message), and volume evidence counts once an
// hour. Errors only skip escalation.
func (e *Engine) scoreAndEscalate(ctx context.Context, t *tuned, sub *Submission, v *Verdict, key string, fams map[Family]int64) {
	for _, fam := range hourlyFamilies {
		// One burst is one piece of volume evidence: the messages after
		// it in the same hour trip the same windows (a reply after a class
		// announcement is "above the baseline" too). They are held, but
		// score again only in a later hour, and evidence over a day's
		// window (first-time recipients in 24 hours) only on a later day:
		// the teacher's note to one new student three hours after the
		// announcement is the same burst. A run's messages likewise.
		if fams[fam] == 0 {
			continue
		}
		dayOnly := true
		for _, f := range v.Findings {
			if f.Family == fam && !f.DryRun && f.Score > 0 && !f.Day {
				dayOnly = false
			}
		}
		if vt, err := e.o.Scores.Peek(ctx, scoreFamilyKey(sub.Account, fam), sub.Time); err == nil && (vt.Recipients1h > 0 || dayOnly && vt.Recipients24h > 0) {
			fams = maps.Clone(fams)
			delete(fams, fam)
		}
	}
	var score int64
	for _, sc := range fams {
		score += sc
	}
	// A message that scores nothing changes no state: for an account in
	// normal state its verdict's Score is not worth reading the window for
	// (in cluster mode a Redis round trip on almost every message); from
	// watch on it is shown with every verdict.
	if score == 0 && v.AccountState.Rank() == store.AccountNormal.Rank() {
		return
	}
	var tot store.Totals
	var err error
	if score > 0 {
		tot, err = e.o.Scores.Charge(ctx, sub.Account, key, sub.Time, score, 1)
		for fam, sc := range fams {
			if _, ferr := e.o.Scores.Charge(ctx, scoreFamilyKey(sub.Account, fam), key, sub.Time, sc, 1); ferr != nil && err == nil {
				err = ferr
			}
		}
	} else {
		tot, err = e.o.Scores.Peek(ctx, sub.Account, sub.Time)
	}
	if err != nil {
		e.log.Warn("account score unavailable", "account", sub.Account, "err", err)
		return
	}
	v.Score, v.ScoredMessages = tot.Messages24h, tot.Recipients24h
	if t.window == time.Hour {
		v.Score, v.ScoredMessages = tot.Messages1h, tot.Recipients1h
	}
	if score == 0 {
		return
	}
	rank := v.AccountState.Rank()
	switch {
	case t.restrict > 0 && v.Score >= t.restrict && v.ScoredMessages >= 2 && rank < store.AccountRestricted.Rank():
		v.Escalate = store.AccountRestricted
	case t.watch > 0 && v.Score >= t.watch && rank < store.AccountWatch.Rank():
		v.Escalate = store.AccountWatch
	}
}

// ScoreBreakdown is an account's score in the score window: the total, how
// many messages it came from, and each family's share.
type ScoreBreakdown struct {
	Total    int64
	Messages int64
	Families map[Family]int64
}

// Scores returns an account's score breakdown at now.
func (e *Engine) Scores(ctx context.Context, account string, now time.Time) (ScoreBreakdown, error) {
	b := ScoreBreakdown{Families: map[Family]int64{}}
	if e.o.Scores == nil {
		return b, nil
	}
	pick := func(t store.Totals) (int64, int64) {
		if e.t.Load().window == time.Hour {
			return t.Messages1h, t.Recipients1h
		}
		return t.Messages24h, t.Recipients24h
	}
	t, err := e.o.Scores.Peek(ctx, account, now)
	if err != nil {
		return b, err
	}
	b.Total, b.Messages = pick(t)
	if b.Total == 0 {
		return b, nil
	}
	for _, fam := range verdict.Families() {
		ft, err := e.o.Scores.Peek(ctx, scoreFamilyKey(account, fam), now)
		if err != nil {
			return b, err
		}
		if sc, _ := pick(ft); sc > 0 {
			b.Families[fam] = sc
		}
	}
	return b, nil
}
