package enforce

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/engine"
	"github.com/mailbrake/mailbrake/internal/fingerprint"
	"github.com/mailbrake/mailbrake/internal/holdspool"
	"github.com/mailbrake/mailbrake/internal/ops"
	"github.com/mailbrake/mailbrake/internal/store"
)

type fakeHolds struct {
	mu    sync.Mutex
	holds []*store.Hold
}

// Record writes at once, as the writer does a moment later.
func (f *fakeHolds) RecordReport(h *store.Hold, report []holdspool.Finding, done func(*store.Hold, bool, error)) {
	f.mu.Lock()
	for _, x := range f.holds {
		if x.QueueID == h.QueueID {
			f.mu.Unlock()
			done(x, false, nil)
			return
		}
	}
	c := *h
	c.ID = int64(len(f.holds) + 1)
	f.holds = append(f.holds, &c)
	f.mu.Unlock()
	done(&c, true, nil)
}

type counts struct {
	mu                            sync.Mutex
	verdicts, shadows, held, errs int
}

func (c *counts) Verdict(string, string, string) { c.mu.Lock(); c.verdicts++; c.mu.Unlock() }
func (c *counts) Shadow(string, string)          { c.mu.Lock(); c.shadows++; c.mu.Unlock() }
func (c *counts) Held(string)                    { c.mu.Lock(); c.held++; c.mu.Unlock() }
func (c *counts) StoreError(string)              { c.mu.Lock(); c.errs++; c.mu.Unlock() }

// TestEnforce: one tail for both paths — a hold is recorded once per
// message with what the path saw, reported with its hold id, and the state
// change queued; evidence and shadow decisions open nothing; the content
// is built only for a hold.
func TestEnforce(t *testing.T) {
	holds, m := &fakeHolds{}, &counts{}
	var reports []ops.Finding
	var escalations []store.AccountState
	e := &Enforcer{Log: slog.New(slog.DiscardHandler), Holds: holds, Metrics: m, Verdicts: &ops.Verdicts{}, Incidents: true,
		Escalate: func(_ string, to store.AccountState, _ string) { escalations = append(escalations, to) },
		Report:   func(_ string, fs []ops.Finding) { reports = append(reports, fs...) }, ScoreWindow: func() time.Duration { return 24 * time.Hour }}
	sub := func(path engine.Path) *engine.Submission {
		return &engine.Submission{Time: time.Now(), Stage: engine.StageEOM, Path: path, Account: "eve@example.org", AccountSource: engine.SourceSASL,
			Direction: engine.Outbound, Client: fingerprint.Result{Family: fingerprint.FamilyUnknown}, QueueID: "4ABC", RecipientCount: 60, Subject: "hi"}
	}
	hold := engine.Verdict{Action: engine.ActionHold, Shadow: engine.ActionHold, Reasons: []engine.Reason{"bulk"}, Escalate: store.AccountWatch,
		Findings: []engine.Finding{{Rule: "bulk", Reason: "bulk", Action: engine.ActionHold, Score: 5}}}
	built := 0
	content := func() Content { built++; return Content{Headers: "X-Mailer: zclient\n", Preview: "buy"} }
	e.Enforce(context.Background(), nil, sub(engine.PathPolicy), hold, time.Millisecond, nil)
	e.Enforce(context.Background(), nil, sub(engine.PathMilter), hold, time.Millisecond, content)
	if len(holds.holds) != 1 || m.held != 1 || built != 1 {
		t.Fatalf("%d records, %d counted, content built %d times", len(holds.holds), m.held, built)
	}
	if len(reports) != 2 || reports[0].HoldID != 1 || reports[1].HoldID != 1 || len(escalations) != 2 || escalations[0] != store.AccountWatch {
		t.Fatalf("reports %+v escalations %v", reports, escalations)
	}
	// Evidence without a score, and a shadow verdict: nothing opens.
	reports = nil
	evidence := engine.Verdict{Action: engine.ActionAllow, Shadow: engine.ActionAllow,
		Findings: []engine.Finding{{Reason: engine.ReasonClientHeaderMismatch, Action: engine.ActionAllow}}}
	e.Enforce(context.Background(), nil, sub(engine.PathMilter), evidence, time.Millisecond, content)
	shadow := hold
	shadow.Action = engine.ActionAllow
	e.Enforce(context.Background(), nil, sub(engine.PathMilter), shadow, time.Millisecond, content)
	if len(reports) != 0 || built != 1 || m.shadows != 1 {
		t.Fatalf("reports %+v, content built %d, shadows %d", reports, built, m.shadows)
	}
	if len(e.Verdicts.Recent("eve@example.org")) == 0 {
		t.Error("verdicts not kept for account show")
	}
}

// TestLogAllowedVerdicts (log.verdicts: all): an allowed message gets one
// structured line with its queue ID, account, client family, reasons and
// how long the decision took; without it, only non-allow verdicts do.
func TestLogAllowedVerdicts(t *testing.T) {
	for _, all := range []bool{false, true} {
		var buf strings.Builder
		e := &Enforcer{Log: slog.New(slog.NewJSONHandler(&buf, nil)), LogAllowed: all}
		sub := &engine.Submission{Time: time.Now(), Stage: engine.StageEOM, Path: engine.PathMilter, QueueID: "4ABC123", Account: "ann@example.org",
			AccountSource: engine.SourceSASL, Client: fingerprint.Result{Family: fingerprint.FamilyThunderbird}, RecipientCount: 2}
		e.Enforce(context.Background(), nil, sub, engine.Verdict{Action: engine.ActionAllow}, 1500*time.Microsecond, nil)
		out := buf.String()
		if !all {
			if out != "" {
				t.Errorf("log.verdicts non-allow logged an allowed message: %s", out)
			}
			continue
		}
		for _, want := range []string{`"msg":"verdict"`, `"action":"allow"`, `"queue_id":"4ABC123"`, `"account":"ann@example.org"`, `"client_family":"thunderbird"`, `"took":1500000`} {
			if !strings.Contains(out, want) {
				t.Errorf("allowed verdict line lacks %s: %s", want, out)
			}
		}
	}
}

// TestOneLinePerMessage: a message's dry-run and evidence findings ride on
// its verdict line, each with its reason, rule, what it would do and its
// evidence, so a sender in learning mode costs one line per message; an
// allowed message with findings of neither kind logs nothing.
func TestOneLinePerMessage(t *testing.T) {
	var buf strings.Builder
	e := &Enforcer{Log: slog.New(slog.NewJSONHandler(&buf, nil))}
	sub := &engine.Submission{Time: time.Now(), Stage: engine.StageEOM, Path: engine.PathPolicy, QueueID: "4ABC123", Account: "ann@example.org"}
	v := engine.Verdict{Action: engine.ActionHold, Shadow: engine.ActionHold, Reasons: []engine.Reason{"rate-recipients-hour"}, Findings: []engine.Finding{
		{Rule: "rate", Reason: "rate-recipients-hour", Action: engine.ActionHold},
		{Rule: "novelty", Reason: "first-time-recipients-day", Action: engine.ActionHold, DryRun: true, Evidence: "first_time_recipients_24h=501 limit=100"},
		{Rule: "baseline", Reason: "above-baseline-hour", Action: engine.ActionHold, DryRun: true, Evidence: "hour_recipients=501 limit=100"},
		{Rule: "client-header-mismatch", Reason: engine.ReasonClientHeaderMismatch, Action: engine.ActionAllow, Score: 2, Evidence: "x-mailer differs"},
	}}
	e.Enforce(context.Background(), nil, sub, v, time.Millisecond, nil)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d lines for one message:\n%s", len(lines), buf.String())
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &got); err != nil {
		t.Fatal(err)
	}
	if got["msg"] != "verdict" || got["action"] != "hold" {
		t.Errorf("line %s", lines[0])
	}
	if want := "first-time-recipients-day (novelty) would hold: first_time_recipients_24h=501 limit=100; above-baseline-hour (baseline) would hold: hour_recipients=501 limit=100"; got["dry_run"] != want {
		t.Errorf("dry_run %q\nwant %q", got["dry_run"], want)
	}
	if want := "client-header-mismatch score 2: x-mailer differs"; got["evidence"] != want {
		t.Errorf("evidence %q\nwant %q", got["evidence"], want)
	}
	// Dry-run findings on an allowed message still get the line.
	buf.Reset()
	v.Action, v.Shadow, v.Reasons, v.Findings = engine.ActionAllow, engine.ActionAllow, nil, v.Findings[1:2]
	e.Enforce(context.Background(), nil, sub, v, time.Millisecond, nil)
	if out := buf.String(); strings.Count(out, "\n") != 1 || !strings.Contains(out, `"dry_run":"first-time-recipients-day (novelty) would hold`) {
		t.Errorf("allowed message with a dry-run finding: %s", out)
	}
	buf.Reset()
	e.Enforce(context.Background(), nil, sub, engine.Verdict{}, time.Millisecond, nil)
	if buf.Len() != 0 {
		t.Errorf("allowed message without findings logged: %s", buf.String())
	}
}
