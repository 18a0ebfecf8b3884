package engine_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/counter"
	"github.com/mailbrake/mailbrake/internal/engine"
	"github.com/mailbrake/mailbrake/internal/fingerprint"
	"github.com/mailbrake/mailbrake/internal/store"
	"github.com/mailbrake/mailbrake/internal/verdict"
)

var (
	t0     = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	client = netip.MustParseAddr("192.0.2.10")
	relay  = netip.MustParseAddr("10.0.0.5")
)

// newEngine returns an engine with the given rules over fresh counters.
func newEngine(t *testing.T, rules []config.Rule) (*engine.Engine, *counter.Memory) {
	t.Helper()
	c := counter.NewMemory()
	e, err := engine.New(engine.Options{Rules: rules, Counters: c, OnError: engine.ActionAllow})
	if err != nil {
		t.Fatal(err)
	}
	return e, c
}

func eval(t *testing.T, e *engine.Engine, sub *engine.Submission) engine.Verdict {
	t.Helper()
	if sub.Time.IsZero() {
		sub.Time = t0
	}
	if sub.Client.Family == "" {
		sub.Client = fingerprint.Result{Family: fingerprint.FamilyUnknown}
	}
	v, err := e.Evaluate(context.Background(), sub)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func totals(t *testing.T, c *counter.Memory, account string) store.Totals {
	t.Helper()
	got, _ := c.Peek(context.Background(), account, t0)
	return got
}

// rcpt is one policy RCPT request of a SASL submission. Postfix fills
// queue_id from the first accepted recipient on (smtpd_delay_open_until_
// valid_rcpt), so the first RCPT of a message has none.
func rcpt(instance, queueID string, port uint16, to string) *engine.Submission {
	return &engine.Submission{Stage: engine.StageRcpt, Path: engine.PathPolicy, Account: "alice@example.edu", AccountSource: engine.SourceSASL,
		ClientAddress: client, ClientPort: port, Sender: "alice@example.edu", Recipient: to, Instance: instance, QueueID: queueID}
}

// TestChargedAtRCPTOnly: a site that wires the policy service at RCPT only
// (as every other policy server's documentation says) never sends
// END-OF-MESSAGE; the message must still be counted, once.
func TestChargedAtRCPTOnly(t *testing.T) {
	e, c := newEngine(t, nil)
	for i := range 3 {
		qid := ""
		if i > 0 {
			qid = "4QID1"
		}
		eval(t, e, rcpt("i1", qid, 40001, fmt.Sprintf("r%d@example.org", i)))
	}
	if got := totals(t, c, "alice@example.edu"); got.Messages1h != 1 || got.Recipients1h != 3 {
		t.Fatalf("after 3 RCPTs: %+v, want 1 message, 3 recipients", got)
	}
	// END-OF-MESSAGE for the same message adds nothing.
	eval(t, e, &engine.Submission{Stage: engine.StageEOM, Path: engine.PathPolicy, Account: "alice@example.edu", AccountSource: engine.SourceSASL,
		ClientAddress: client, ClientPort: 40001, Sender: "alice@example.edu", RecipientCount: 3, Instance: "i1", QueueID: "4QID1"})
	// nor does the milter's end of message, found by the queue ID.
	eval(t, e, &engine.Submission{Stage: engine.StageEOM, Path: engine.PathMilter, Account: "alice@example.edu", AccountSource: engine.SourceSASL,
		ClientAddress: client, ClientPort: 40001, Sender: "alice@example.edu", Recipients: []string{"r0@example.org", "r1@example.org", "r2@example.org"},
		RecipientCount: 3, QueueID: "4QID1"})
	if got := totals(t, c, "alice@example.edu"); got.Messages1h != 1 || got.Recipients1h != 3 {
		t.Fatalf("after end of message on both paths: %+v, want 1 message, 3 recipients", got)
	}
}

// TestOneRecipientRCPTOnlyAndMilter: with RCPT-only wiring a one-recipient
// message's only policy request carries no queue ID; the milter finds the
// message by the client connection and does not count it again. The next
// message on the same connection is a new message.
func TestOneRecipientRCPTOnlyAndMilter(t *testing.T) {
	e, c := newEngine(t, nil)
	for i, qid := range []string{"4QA", "4QB"} {
		inst := fmt.Sprintf("i%d", i)
		eval(t, e, rcpt(inst, "", 40002, "bob@example.org"))
		eval(t, e, &engine.Submission{Stage: engine.StageEOM, Path: engine.PathMilter, Account: "alice@example.edu", AccountSource: engine.SourceSASL,
			ClientAddress: client, ClientPort: 40002, Sender: "alice@example.edu", Recipients: []string{"bob@example.org"}, RecipientCount: 1, QueueID: qid})
		if got := totals(t, c, "alice@example.edu"); got.Messages1h != int64(i+1) || got.Recipients1h != int64(i+1) {
			t.Fatalf("after message %d: %+v", i+1, got)
		}
	}
	// Another client's message with the same sender is not taken for it.
	eval(t, e, &engine.Submission{Stage: engine.StageEOM, Path: engine.PathMilter, Account: "alice@example.edu", AccountSource: engine.SourceSASL,
		ClientAddress: client, ClientPort: 40003, Sender: "alice@example.edu", Recipients: []string{"x@example.org"}, RecipientCount: 1, QueueID: "4QC"})
	if got := totals(t, c, "alice@example.edu"); got.Messages1h != 3 {
		t.Fatalf("other connection: %+v, want 3 messages", got)
	}
}

// TestRateLimitWithRCPTOnlyWiring: the default-style messages-per-hour rule
// defers at RCPT when only RCPT requests arrive; the deferred recipient is
// not sent and not charged.
func TestRateLimitWithRCPTOnlyWiring(t *testing.T) {
	rules := []config.Rule{{Name: "mph", Reason: "rate-messages-hour", Stage: config.StageRcpt, Verdict: verdict.Defer.Ptr(),
		When: []config.Condition{{Fact: "messages_1h", Gte: ptr(5.0)}}}}
	e, c := newEngine(t, rules)
	var deferred int
	for i := range 8 {
		inst := fmt.Sprintf("m%d", i)
		for j := range 2 {
			qid := ""
			if j > 0 {
				qid = "Q" + inst
			}
			v := eval(t, e, rcpt(inst, qid, uint16(41000+i), fmt.Sprintf("r%d@example.org", j)))
			if v.Action == engine.ActionDefer {
				deferred++
			}
		}
	}
	// Five messages of two recipients go; the other three are deferred at
	// both of their recipients.
	if deferred != 6 {
		t.Errorf("deferred %d recipients, want 6", deferred)
	}
	if got := totals(t, c, "alice@example.edu"); got.Messages1h != 5 || got.Recipients1h != 10 {
		t.Errorf("counters %+v, want 5 messages, 10 recipients", got)
	}
}

// TestRelayedDecidedByMilter: mail from a trusted relay without SASL (Zimbra
// webmail) names its account only in the relay's header, which the policy
// path cannot see: the policy path charges nothing and decides nothing; the
// milter charges the header's account, and a policy request after it for
// the same message takes the milter's identity.
func TestRelayedDecidedByMilter(t *testing.T) {
	e, c := newEngine(t, nil)
	id, err := engine.NewIdentity([]string{"10.0.0.0/24"}, "X-Authenticated-User")
	if err != nil {
		t.Fatal(err)
	}
	acct, src, _ := id.ResolvePolicy("", "alice@example.edu", relay)
	if src != engine.SourceRelayed {
		t.Fatalf("policy source %q, want relayed", src)
	}
	for i := range 3 {
		qid := ""
		if i > 0 {
			qid = "4QR"
		}
		v := eval(t, e, &engine.Submission{Stage: engine.StageRcpt, Path: engine.PathPolicy, Account: acct, AccountSource: src,
			ClientAddress: relay, ClientPort: 50000, Sender: "alice@example.edu", Recipient: fmt.Sprintf("r%d@example.org", i), Instance: "w1", QueueID: qid})
		if !v.Undecided || v.Action != engine.ActionAllow {
			t.Fatalf("policy RCPT: %+v, want undecided allow", v)
		}
	}
	if got := totals(t, c, "alice@example.edu"); got != (store.Totals{}) {
		t.Fatalf("policy path charged the envelope sender: %+v", got)
	}
	// The relay's header names bob (alice's envelope sender is a persona
	// or a delegated mailbox).
	hacct, forged := engine.HeaderAccount([]string{"bob@example.edu"})
	macct, msrc, _ := id.Resolve("", hacct, "alice@example.edu", relay)
	if macct != "bob@example.edu" || msrc != engine.SourceHeader || forged != nil {
		t.Fatalf("milter identity %q %q %v", macct, msrc, forged)
	}
	eval(t, e, &engine.Submission{Stage: engine.StageEOM, Path: engine.PathMilter, Account: macct, AccountSource: msrc,
		ClientAddress: relay, ClientPort: 50000, Sender: "alice@example.edu", RecipientCount: 3, QueueID: "4QR"})
	sub := &engine.Submission{Stage: engine.StageEOM, Path: engine.PathPolicy, Account: acct, AccountSource: src,
		ClientAddress: relay, ClientPort: 50000, Sender: "alice@example.edu", RecipientCount: 3, Instance: "w1", QueueID: "4QR"}
	eval(t, e, sub)
	if sub.Account != "bob@example.edu" || sub.AccountSource != engine.SourceHeader {
		t.Errorf("policy end of message after the milter: %q %q, want the milter's bob@example.edu", sub.Account, sub.AccountSource)
	}
	if got := totals(t, c, "bob@example.edu"); got.Messages1h != 1 || got.Recipients1h != 3 {
		t.Errorf("bob: %+v, want 1 message, 3 recipients", got)
	}
	if got := totals(t, c, "alice@example.edu"); got != (store.Totals{}) {
		t.Errorf("alice charged: %+v", got)
	}
	// identity.relayed_on_policy: sender charges the envelope sender.
	id.PolicySender = true
	if a, s, _ := id.ResolvePolicy("", "Alice@Example.edu", relay); a != "alice@example.edu" || s != engine.SourceSender {
		t.Errorf("relayed_on_policy sender: %q %q", a, s)
	}
}

// TestIdentityDecidedOnce: the policy path names the SASL login; a milter
// that does not get the SASL macros (milter_mail_macros without
// {auth_authen}) takes the same identity for the same message instead of
// treating it as inbound.
func TestIdentityDecidedOnce(t *testing.T) {
	e, c := newEngine(t, nil)
	eval(t, e, rcpt("s1", "", 40010, "bob@example.org"))
	sub := &engine.Submission{Stage: engine.StageEOM, Path: engine.PathMilter, Account: engine.Unauthenticated, AccountSource: engine.SourceUnauthenticated,
		ClientAddress: client, ClientPort: 40010, Sender: "alice@example.edu", Recipients: []string{"bob@example.org"}, RecipientCount: 1, QueueID: "4QS"}
	eval(t, e, sub)
	if sub.Account != "alice@example.edu" || sub.AccountSource != engine.SourceSASL {
		t.Errorf("milter identity %q %q, want the policy path's SASL login", sub.Account, sub.AccountSource)
	}
	if got := totals(t, c, "alice@example.edu"); got.Messages1h != 1 || got.Recipients1h != 1 {
		t.Errorf("%+v", got)
	}
}

func TestHeaderAccount(t *testing.T) {
	for _, c := range []struct {
		copies  []string
		account string
		others  []string
	}{
		{nil, "", nil},
		{[]string{"Alice@Example.edu"}, "alice@example.edu", nil},
		// A SOAP upload with a forged first copy: the relay's is the last
		// (zm-mailbox MailSender.updateHeaders addHeader after existing
		// copies, ZInternetHeaders.addHeader; commit 2b7f9787c69e).
		{[]string{"victim@example.edu", "mallory@example.edu"}, "mallory@example.edu", []string{"victim@example.edu"}},
		{[]string{"a@x.org", "b@x.org", "a@x.org", "c@x.org"}, "c@x.org", []string{"a@x.org", "b@x.org"}},
		// The same account twice is no forgery.
		{[]string{"<alice@example.edu>", "alice@example.edu"}, "alice@example.edu", nil},
		{[]string{"bad\x01value", "alice@example.edu"}, "alice@example.edu", []string{"(unreadable)"}},
	} {
		a, o := engine.HeaderAccount(c.copies)
		if a != c.account || !slices.Equal(o, c.others) {
			t.Errorf("HeaderAccount(%q) = %q %q, want %q %q", c.copies, a, o, c.account, c.others)
		}
	}
}

func ptr[T any](v T) *T { return &v }
