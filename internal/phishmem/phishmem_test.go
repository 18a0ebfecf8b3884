package phishmem

import (
	"context"
	"encoding/binary"
	"fmt"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/engine"
)

func headers(h map[string]string) func(string) string {
	return func(n string) string { return h[n] }
}

var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

func TestReplyToRememberedPhish(t *testing.T) {
	m := New(Options{SpamFlag: true, SubjectTags: []string{"[Fraud Alert: Suspected SPAM]"},
		Headers: []HeaderMatch{{Header: "X-Spam-Status", Matches: regexp.MustCompile(`^Yes\b`)}}, Score: 5})
	ctx := context.Background()
	in := func(subject string, h map[string]string, id, from, replyTo string) {
		m.Inbound(ctx, &engine.Submission{Time: t0, Subject: subject, Header: headers(h), MessageID: id, From: from, ReplyTo: replyTo})
	}
	in("[Fraud Alert: Suspected SPAM] Your mailbox is full", nil, "<ABC@phish.example>", "IT Desk <it@phish.example>", "Helpdesk <collect@drop.example>")
	in("invoice", map[string]string{"X-Spam-Flag": "YES"}, "<def@spam.example>", "boss@spam.example", "")
	in("hello", map[string]string{"X-Spam-Status": "Yes, score=9"}, "<ghi@x.example>", "a@x.example", "")
	in("a normal newsletter", map[string]string{"X-Spam-Flag": "NO"}, "<ok@news.example>", "news@news.example", "")
	if ids, addrs := m.Len(); ids != 3 || addrs != 3 {
		t.Fatalf("remembered %d ids, %d addrs", ids, addrs)
	}
	out := func(at time.Duration, inReplyTo string, refs []string, rcpts ...string) []engine.Finding {
		return m.Outbound(ctx, &engine.Submission{Time: t0.Add(at), InReplyTo: inReplyTo, References: refs, Recipients: rcpts})
	}
	cases := []struct {
		name string
		f    []engine.Finding
		want bool
	}{
		{"in-reply-to", out(time.Hour, "<abc@PHISH.example>", nil, "someone@else.example"), true},
		{"references", out(time.Hour, "", []string{"<x@y>", "<def@spam.example>"}, "z@z.example"), true},
		{"to the reply-to", out(time.Hour, "", nil, "COLLECT@drop.example"), true},
		{"to From when Reply-To is absent", out(time.Hour, "", nil, "boss@spam.example"), true},
		{"not to From when Reply-To exists", out(time.Hour, "", nil, "it@phish.example"), false},
		{"untagged mail", out(time.Hour, "<ok@news.example>", nil, "news@news.example"), false},
		{"after retention", out(31*24*time.Hour, "<abc@phish.example>", nil, "collect@drop.example"), false},
	}
	for _, c := range cases {
		if got := len(c.f) > 0; got != c.want {
			t.Errorf("%s: finding %v, want %v", c.name, c.f, c.want)
		}
		if len(c.f) > 0 && (c.f[0].Reason != ReasonReplyToSuspectedPhish || c.f[0].Action != engine.ActionHold || c.f[0].Score != 5) {
			t.Errorf("%s: finding %+v", c.name, c.f[0])
		}
	}
}

func TestBounded(t *testing.T) {
	m := New(Options{SpamFlag: true, MaxEntries: 100})
	for i := 0; i < 1000; i++ {
		m.Inbound(context.Background(), &engine.Submission{Time: t0.Add(time.Duration(i) * time.Minute), Header: headers(map[string]string{"X-Spam-Flag": "YES"}),
			MessageID: fmt.Sprintf("<%d@x>", i), From: fmt.Sprintf("s%d@x.example", i)})
	}
	ids, addrs := m.Len()
	if ids+addrs > 100 {
		t.Fatalf("%d entries, cap 100", ids+addrs)
	}
	// The newest are kept.
	if f := m.Outbound(context.Background(), &engine.Submission{Time: t0.Add(1000 * time.Minute), InReplyTo: "<999@x>"}); len(f) == 0 {
		t.Fatal("newest entry evicted")
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"<a@b>", "Name <A@B.example>", "", "<>", "a b@c", "\"x\" <y@z>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if id := NormalizeID(s); id != "" && NormalizeID("<"+id+">") != id {
			t.Fatalf("NormalizeID not stable: %q → %q", s, id)
		}
		if a := NormalizeAddress(s); a != "" && NormalizeAddress(a) != a {
			t.Fatalf("NormalizeAddress not stable: %q → %q → %q", s, a, NormalizeAddress(a))
		}
	})
}

func TestSnapshot(t *testing.T) {
	m := New(Options{SpamFlag: true})
	m.Inbound(context.Background(), &engine.Submission{Time: t0, Header: headers(map[string]string{"X-Spam-Flag": "YES"}), MessageID: "<s@x>", ReplyTo: "r@x.example"})
	snap := m.Dirty()
	if len(snap) != 2 || len(m.Dirty()) != 0 {
		t.Fatalf("dirty: %v", snap)
	}
	n := New(Options{SpamFlag: true})
	if err := n.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if f := n.Outbound(context.Background(), &engine.Submission{Time: t0.Add(time.Hour), Recipients: []string{"r@x.example"}}); len(f) != 1 {
		t.Fatal("restored memory does not match")
	}
	if err := n.Restore(map[string][]byte{"z:x": {2}}); err == nil {
		t.Fatal("bad entry accepted")
	}
}

// TestTrustTagsFromFilter: with a content filter handing mail back through
// a re-injection listener, only tags the filter added count. An outsider
// who writes X-Spam-Flag or the subject tag into their own message (to
// have replies to someone held) is not learned; a tag the filter added on
// the way is.
func TestTrustTagsFromFilter(t *testing.T) {
	for _, mode := range []string{TrustReinjection, TrustAuto} {
		t.Run(mode, func(t *testing.T) {
			m := New(Options{SpamFlag: true, SubjectTags: []string{"[SPAM]"}, Score: 5, TrustTags: mode})
			ctx := context.Background()
			pass := func(reinjected bool, subject, id, from string, flags ...string) {
				m.Inbound(ctx, &engine.Submission{Time: t0, Subject: subject, MessageID: id, From: from, Reinjected: reinjected,
					HeaderValues: func(n string) []string {
						if n == "X-Spam-Flag" {
							return flags
						}
						return nil
					}})
			}
			if mode == TrustAuto {
				// Until a re-injection is seen, auto believes first passes.
				pass(false, "[SPAM] early", "<early@x.example>", "early@x.example", "YES")
				if ids, _ := m.Len(); ids != 1 {
					t.Fatalf("auto before any re-injection: %d ids remembered, want 1", ids)
				}
				pass(true, "warm-up", "<warm@x.example>", "warm@x.example")
			}
			before, _ := m.Len()
			// The poisoner's own tags, unchanged by the filter.
			pass(false, "[SPAM] hello", "<poison@bad.example>", "victim-of-poison@good.example", "YES")
			pass(true, "[SPAM] hello", "<poison@bad.example>", "victim-of-poison@good.example", "YES")
			// Real phish: the filter adds the flag and the subject tag.
			pass(false, "Your mailbox is full", "<phish@phish.example>", "it@phish.example")
			pass(true, "[SPAM] Your mailbox is full", "<phish@phish.example>", "it@phish.example", "YES")
			if ids, _ := m.Len(); ids != before+1 {
				t.Fatalf("%d new ids remembered, want 1 (the filter-tagged phish only)", ids-before)
			}
			f := m.Outbound(ctx, &engine.Submission{Time: t0.Add(time.Hour), Recipients: []string{"victim-of-poison@good.example"}})
			if len(f) != 0 {
				t.Errorf("a reply to the poisoner's address is caught: %+v", f)
			}
			if f := m.Outbound(ctx, &engine.Submission{Time: t0.Add(time.Hour), InReplyTo: "<phish@phish.example>"}); len(f) != 1 {
				t.Errorf("a reply to the filter-tagged phish is not caught: %+v", f)
			}
		})
	}
}

// TestLearnedAcrossNodes: what one node's memory learns from its inbound
// mail (Learned) another applies (ApplyLearned), so a reply through the
// other MTA is caught; an expired or malformed event changes nothing.
func TestLearnedAcrossNodes(t *testing.T) {
	ctx := context.Background()
	now := time.Now().UTC()
	a, b := New(Options{SpamFlag: true}), New(Options{SpamFlag: true})
	var events [][]byte
	a.Learned = func(ev []byte) { events = append(events, ev) }
	a.Inbound(ctx, &engine.Submission{Time: now, Header: headers(map[string]string{"X-Spam-Flag": "YES"}),
		MessageID: "<Lure@Phish.example>", From: "it@phish.example", ReplyTo: "Desk <Collect@Drop.example>"})
	if len(events) != 2 {
		t.Fatalf("%d events, want 2 (Message-ID, Reply-To)", len(events))
	}
	for _, ev := range events {
		if err := b.ApplyLearned(ev); err != nil {
			t.Fatal(err)
		}
	}
	if f := b.Outbound(ctx, &engine.Submission{Time: now.Add(time.Hour), Recipients: []string{"collect@drop.example"}}); len(f) != 1 {
		t.Fatalf("reply to the Reply-To on the other node: %v", f)
	}
	if f := b.Outbound(ctx, &engine.Submission{Time: now.Add(time.Hour), InReplyTo: "<lure@phish.example>", Recipients: []string{"x@y.example"}}); len(f) != 1 {
		t.Fatalf("In-Reply-To on the other node: %v", f)
	}
	if ids, addrs := b.Len(); ids != 1 || addrs != 1 {
		t.Fatalf("b remembers %d ids, %d addrs", ids, addrs)
	}
	if d := b.Dirty(); len(d) != 2 {
		t.Fatalf("applied entries are saved with b's snapshots: %v", d)
	}
	// Expired: ignored. Malformed: refused, nothing remembered.
	old := append(binary.AppendVarint(nil, now.Add(-time.Hour).Unix()), "a:old@x.example"...)
	if err := b.ApplyLearned(old); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{nil, {0x80}, append(binary.AppendVarint(nil, now.Add(time.Hour).Unix()), "z:what"...),
		append(binary.AppendVarint(nil, now.Add(time.Hour).Unix()), "a:Not Normal <X@Y>"...)} {
		if err := b.ApplyLearned(bad); err == nil {
			t.Errorf("%q applied", bad)
		}
	}
	if ids, addrs := b.Len(); ids != 1 || addrs != 1 {
		t.Fatalf("after bad events b remembers %d ids, %d addrs", ids, addrs)
	}
}

// FuzzApplyLearned: any event from the stream is applied or refused with
// an error, never a panic, and what is applied is normalised.
func FuzzApplyLearned(f *testing.F) {
	exp := binary.AppendVarint(nil, time.Now().Add(24*time.Hour).Unix())
	for _, k := range []string{"a:collect@drop.example", "i:lure@phish.example", "z:x", "a:", "a:Not <Normal@X>"} {
		f.Add(append(slices.Clone(exp), k...))
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, ev []byte) {
		m := New(Options{})
		if err := m.ApplyLearned(ev); err != nil {
			return
		}
		for k := range m.Dirty() {
			if len(k) < 3 || (k[:2] != "i:" && k[:2] != "a:") {
				t.Fatalf("applied %q", k)
			}
		}
	})
}
