package engine_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/counter"
	"github.com/mailbrake/mailbrake/internal/engine"
	"github.com/mailbrake/mailbrake/internal/verdict"
)

// threePerHour is a RCPT-stage rate limit like the default
// messages-per-hour, at 3.
func threePerHour() []config.Rule {
	three := 3.0
	unauth := "unauthenticated"
	return []config.Rule{{Name: "messages-per-hour", Reason: "rate-messages-hour", Stage: config.StageRcpt,
		When:    []config.Condition{{Fact: "account_source", Ne: &unauth}, {Fact: "messages_1h", Gte: &three}},
		Verdict: verdict.Defer.Ptr()}}
}

// webmail is a message Zimbra's mailbox server relays: the milter names
// the account from the relay's header; the policy path cannot.
func webmail(qid string, source engine.AccountSource) *engine.Submission {
	return &engine.Submission{Stage: engine.StageEOM, Path: engine.PathMilter, Account: "eve@example.edu", AccountSource: source,
		ClientAddress: relay, ClientPort: 41000, Sender: "eve@example.edu", Recipients: []string{"a@example.org", "b@example.org"},
		RecipientCount: 2, QueueID: qid, TrustedClient: true}
}

// TestRcptRulesAtEndOfMessage: when no RCPT of a message reached the
// policy path (a milter-only site such as Zimbra, whose zmconfigd drops a
// policy service; relayed webmail, whose account the policy path cannot
// read), the RCPT-stage rate limits apply at end of message — the 4th
// message in an hour is deferred, and a deferred message is not charged,
// as a recipient deferred at RCPT is not. Shadow mode lets the deferral
// through and charges the message.
func TestRcptRulesAtEndOfMessage(t *testing.T) {
	for _, tc := range []struct {
		name     string
		shadow   bool
		source   engine.AccountSource
		deferred bool
	}{
		{"relayed webmail", false, engine.SourceHeader, true},
		{"SASL, milter only", false, engine.SourceSASL, true},
		{"shadow", true, engine.SourceHeader, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := counter.NewMemory()
			e, err := engine.New(engine.Options{Rules: threePerHour(), Counters: c, OnError: engine.ActionAllow, Shadow: tc.shadow})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				if v := eval(t, e, webmail(fmt.Sprintf("4Q%d", i), tc.source)); v.Action != engine.ActionAllow {
					t.Fatalf("message %d: %+v", i+1, v)
				}
			}
			v := eval(t, e, webmail("4Q3", tc.source))
			got := totals(t, c, "eve@example.edu")
			if !tc.deferred {
				if v.Action != engine.ActionAllow || got.Messages1h != 4 {
					t.Fatalf("4th message: %s (shadow %s), counted %+v; want it sent and counted", v.Action, v.Shadow, got)
				}
				if tc.shadow && (v.Shadow != engine.ActionDefer || !slices.Contains(v.Reasons, "rate-messages-hour")) {
					t.Fatalf("shadow mode does not say what it would have done: %+v", v)
				}
				return
			}
			if v.Action != engine.ActionDefer || !slices.Contains(v.Reasons, "rate-messages-hour") || v.Text == "" {
				t.Fatalf("4th message: %+v, want a deferral for rate-messages-hour", v)
			}
			if got.Messages1h != 3 || got.Recipients1h != 6 {
				t.Fatalf("after the deferral: %+v, want 3 messages and 6 recipients (the deferred one not charged)", got)
			}
		})
	}
}

// TestRcptRulesNotCheckedTwice: a message whose recipients the policy
// path checked at RCPT is not checked again at the milter's end of
// message, where the counts already include it: the 3rd message of an
// account limited to 3 an hour goes.
func TestRcptRulesNotCheckedTwice(t *testing.T) {
	c := counter.NewMemory()
	e, err := engine.New(engine.Options{Rules: threePerHour(), Counters: c, OnError: engine.ActionAllow})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		qid := fmt.Sprintf("4QB%d", i)
		port := uint16(42000 + i)
		for j, to := range []string{"a@example.org", "b@example.org"} {
			q := qid
			if j == 0 {
				q = ""
			}
			if v := eval(t, e, rcpt(fmt.Sprintf("b%d", i), q, port, to)); v.Action != engine.ActionAllow {
				t.Fatalf("message %d RCPT %s: %+v", i+1, to, v)
			}
		}
		v := eval(t, e, &engine.Submission{Stage: engine.StageEOM, Path: engine.PathMilter, Account: "alice@example.edu", AccountSource: engine.SourceSASL,
			ClientAddress: client, ClientPort: port, Sender: "alice@example.edu", Recipients: []string{"a@example.org", "b@example.org"}, RecipientCount: 2, QueueID: qid})
		if v.Action != engine.ActionAllow {
			t.Fatalf("message %d at the milter's end of message: %+v", i+1, v)
		}
	}
	if got := totals(t, c, "alice@example.edu"); got.Messages1h != 3 || got.Recipients1h != 6 {
		t.Fatalf("counted %+v", got)
	}
}

// trustAll trusts every account with every client.
type trustAll struct{}

func (trustAll) Trusted(string, string, time.Time) (time.Time, bool) {
	return t0.Add(24 * time.Hour), true
}

// TestRcptRulesAtEndOfMessageTrusted: an account an admin trusts with its
// client is not deferred by the RCPT-stage rules at the milter's end of
// message either (its findings are dry runs), as on the policy path.
func TestRcptRulesAtEndOfMessageTrusted(t *testing.T) {
	c := counter.NewMemory()
	e, err := engine.New(engine.Options{Rules: threePerHour(), Counters: c, OnError: engine.ActionAllow, Trust: trustAll{}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		v := eval(t, e, webmail(fmt.Sprintf("4QT%d", i), engine.SourceHeader))
		if v.Action != engine.ActionAllow {
			t.Fatalf("message %d of a trusted account: %+v", i+1, v)
		}
		if i == 3 && (len(v.Findings) == 0 || !v.Findings[0].DryRun || !strings.Contains(v.Findings[0].Evidence, "trusted")) {
			t.Fatalf("the 4th message's finding is not a trusted dry run: %+v", v.Findings)
		}
	}
}

// TestRcptRulesBookLost: on a site whose policy path checks RCPTs, a SASL
// message the book no longer has at end of message (a DATA phase that
// outlived it) is not checked again: its RCPTs were.
func TestRcptRulesBookLost(t *testing.T) {
	c := counter.NewMemory()
	e, err := engine.New(engine.Options{Rules: threePerHour(), Counters: c, OnError: engine.ActionAllow})
	if err != nil {
		t.Fatal(err)
	}
	// The policy path checks (and charges) three messages' RCPTs.
	for i := range 3 {
		if v := eval(t, e, rcpt(fmt.Sprintf("l%d", i), "", uint16(43000+i), "a@example.org")); v.Action != engine.ActionAllow {
			t.Fatalf("RCPT %d: %+v", i, v)
		}
	}
	// A milter end of message the book cannot link (another connection).
	v := eval(t, e, &engine.Submission{Stage: engine.StageEOM, Path: engine.PathMilter, Account: "alice@example.edu", AccountSource: engine.SourceSASL,
		ClientAddress: client, ClientPort: 44999, Sender: "alice@example.edu", Recipients: []string{"a@example.org"}, RecipientCount: 1, QueueID: "4QLOST"})
	if v.Action != engine.ActionAllow {
		t.Fatalf("a message whose RCPTs the policy path checked was checked again: %+v", v)
	}
}
