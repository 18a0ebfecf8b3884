package detect

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/campaign"
	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/counter"
	"github.com/mailbrake/mailbrake/internal/engine"
	"github.com/mailbrake/mailbrake/internal/novelty"
	"github.com/mailbrake/mailbrake/internal/pwleak"
	"github.com/mailbrake/mailbrake/internal/verdict"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func rcpts(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + string(rune('a'+i%26)) + strings.Repeat("x", i/26) + "@far.example"
	}
	return out
}

func TestNoveltyFindings(t *testing.T) {
	tr := novelty.New(novelty.Options{Key: []byte("test")})
	n := NewNovelty(tr, NoveltyOptions{FirstTimeHour: 20, FirstTimeDay: 30, Learning: 24 * time.Hour, Action: engine.ActionHold, Score: 5,
		LocalDomains: []string{"example.edu"}})
	ctx := context.Background()
	sub := func(at time.Time, rs ...string) *engine.Submission {
		return &engine.Submission{Time: at, Stage: engine.StageEOM, Account: "u@example.edu", Sender: "u@example.edu", Recipients: rs, RecipientCount: len(rs)}
	}
	// Learning: 25 first-time recipients in the first day are reported as
	// dry-run only.
	s := sub(t0, rcpts("l", 25)...)
	fs := n.Outbound(ctx, s)
	if len(fs) != 1 || fs[0].Reason != ReasonFirstTimeRecipientsHour || !fs[0].DryRun || !strings.Contains(fs[0].Evidence, "learning") {
		t.Fatalf("during learning: %+v", fs)
	}
	if s.Novelty == nil || s.Novelty.New != 25 || s.Novelty.External != 25 || s.Novelty.Domains != 1 {
		t.Fatalf("novelty facts: %+v", s.Novelty)
	}
	// Two days later: the same correspondents are known and internal
	// recipients are not external.
	at := t0.Add(48 * time.Hour)
	s = sub(at, append(rcpts("l", 10), "colleague@example.edu")...)
	if fs := n.Outbound(ctx, s); len(fs) != 0 {
		t.Fatalf("known correspondents flagged: %+v", fs)
	}
	if s.Novelty.New != 1 || s.Novelty.External != 10 || s.Novelty.Distinct != 11 {
		t.Fatalf("novelty facts: %+v", s.Novelty)
	}
	// 21 strangers in an hour: over the hour limit, acted on.
	s = sub(at.Add(time.Minute), rcpts("s", 20)...)
	if fs := n.Outbound(ctx, s); len(fs) != 1 || fs[0].Reason != ReasonFirstTimeRecipientsHour || fs[0].DryRun || fs[0].Action != engine.ActionHold {
		t.Fatalf("21 first-time in an hour: %+v", fs)
	}
	// Later that day: over the day limit too. A reply to a known
	// correspondent adds nothing new and is not flagged.
	s = sub(at.Add(3*time.Hour), rcpts("t", 10)...)
	fs = n.Outbound(ctx, s)
	if len(fs) != 1 || fs[0].Reason != ReasonFirstTimeRecipientsDay {
		t.Fatalf("31 first-time in a day: %+v", fs)
	}
	if fs := n.Outbound(ctx, sub(at.Add(3*time.Hour+time.Minute), "la@far.example")); len(fs) != 0 {
		t.Fatalf("reply to a known correspondent flagged: %+v", fs)
	}
}

// TestNoveltyFactsInRules: the rules see the novelty facts at end of
// message, and a rule may not test them at RCPT.
func TestNoveltyFactsInRules(t *testing.T) {
	cfg := config.Default()
	cfg.Novelty.FirstTimeDay = 0
	cfg.Baseline.Enabled = false
	gt := 0.5
	cfg.Rules = []config.Rule{{Name: "mostly-external", Verdict: verdict.Tag.Ptr(), When: []config.Condition{{Fact: "external_share", Gt: &gt}}}}
	set, err := Build(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(engine.Options{Rules: cfg.Rules, Counters: counter.NewMemory(), Detectors: set.All()})
	if err != nil {
		t.Fatal(err)
	}
	v, err := e.Evaluate(context.Background(), &engine.Submission{Time: t0, Stage: engine.StageEOM, Account: "u@example.edu", AccountSource: engine.SourceSASL,
		Sender: "u@example.edu", Recipients: []string{"a@far.example", "b@far.example", "c@example.edu"}, RecipientCount: 3, QueueID: "Q1"})
	if err != nil {
		t.Fatal(err)
	}
	if v.Action != engine.ActionTag || len(v.Reasons) != 1 || v.Reasons[0] != "mostly-external" {
		t.Fatalf("verdict %+v", v)
	}
	cfg.Rules[0].Stage = config.StageRcpt
	cfg.Rules[0].Verdict = verdict.Defer.Ptr()
	if _, errs := engine.Compile(cfg.Rules); len(errs) == 0 || !strings.Contains(errs.Error(), "end of message") {
		t.Fatalf("novelty fact at rcpt: %v", errs)
	}
}

// TestLearnersOncePerQueueID: when the policy path and the milter both
// decide one message, the learning detectors record it once and both
// paths get the same findings.
func TestLearnersOncePerQueueID(t *testing.T) {
	cfg := config.Default()
	cfg.Novelty.FirstTimeHour, cfg.Novelty.FirstTimeDay, cfg.Novelty.Learning = 5, 0, 0
	set, err := Build(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(engine.Options{Rules: cfg.Rules, Counters: counter.NewMemory(), Detectors: set.All()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rs := rcpts("q", 6)
	for _, path := range []engine.Path{engine.PathPolicy, engine.PathMilter} {
		v, err := e.Evaluate(ctx, &engine.Submission{Time: t0, Stage: engine.StageEOM, Path: path, Account: "u@example.edu", AccountSource: engine.SourceSASL,
			Sender: "u@example.edu", Recipients: rs, RecipientCount: len(rs), QueueID: "4XyZ1"})
		if err != nil {
			t.Fatal(err)
		}
		if v.Action != engine.ActionHold || v.Reasons[0] != ReasonFirstTimeRecipientsHour {
			t.Fatalf("%s path: %+v", path, v)
		}
	}
	if st := set.Novelty.Tracker.Peek("u@example.edu", t0); st.FirstTime1h != 6 {
		t.Fatalf("message learned twice: first-time in the hour = %d, want 6", st.FirstTime1h)
	}
}

func write(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const aprlHeader = "# ADDRESS,TYPE,DATE\n"

func TestPhishers(t *testing.T) {
	dir := t.TempDir()
	list := write(t, dir, "phishing_reply_addresses", aprlHeader+
		"verify.desk@phish.example,A,20260101\n"+
		"hijacked@uni.example,E,20250101\n"+
		"colleague@partner.example,BE,20240101\n"+
		"not a line\n")
	cleared := write(t, dir, "phishing_cleared_addresses", "# ADDRESS,DATE\nhijacked@uni.example,20250301\n")
	block := write(t, dir, "block", "# site blocklist\n@evil.example\nbad.example\n")
	allow := write(t, dir, "allow", "colleague@partner.example\n")
	p, err := NewPhishers(PhishersOptions{Lists: []string{list}, Cleared: []string{cleared}, Blocklist: []string{block}, Allowlist: []string{allow},
		Action: engine.ActionHold, Score: 5, InboundAction: engine.ActionTag})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		addr string
		want bool
	}{
		{"verify.desk@phish.example", true},
		{"<Verify.Desk@PHISH.example>", true},
		{"hijacked@uni.example", false},      // cleared after it was listed
		{"colleague@partner.example", false}, // allowlisted over the list
		{"anyone@evil.example", true},        // @domain
		{"anyone@sub.evil.example", false},   // @domain is exact
		{"x@mx.bad.example", true},           // bare domain: subdomains too
		{"someone@example.edu", false},
		{"", false},
	} {
		if _, got := p.Lookup(c.addr); got != c.want {
			t.Errorf("Lookup(%q) = %v, want %v", c.addr, got, c.want)
		}
	}
	ctx := context.Background()
	out := &engine.Submission{Time: t0, Stage: engine.StageEOM, Account: "u@example.edu", Recipients: []string{"friend@example.edu", "verify.desk@phish.example"}}
	fs := p.Outbound(ctx, out)
	if len(fs) != 1 || fs[0].Reason != ReasonReplyToPhisher || fs[0].Action != engine.ActionHold || fs[0].Score != 5 ||
		!strings.Contains(fs[0].Evidence, "verify.desk@phish.example") || !strings.Contains(fs[0].Evidence, "type A") {
		t.Fatalf("outbound: %+v", fs)
	}
	in := &engine.Submission{Time: t0, Stage: engine.StageEOM, Direction: engine.Inbound, From: "it-support@uni.example", ReplyTo: "verify.desk@phish.example"}
	fs = p.Inbound(ctx, in)
	if len(fs) != 1 || fs[0].Reason != ReasonFromListedPhisher || fs[0].Action != engine.ActionTag || !strings.HasPrefix(fs[0].Evidence, "reply-to ") {
		t.Fatalf("inbound: %+v", fs)
	}
	if fs := p.Inbound(ctx, &engine.Submission{From: "friend@example.org"}); len(fs) != 0 {
		t.Fatalf("inbound from an unlisted address: %+v", fs)
	}

	// Reload: a new list renamed into place replaces the old one; a
	// broken replacement keeps the previous lists.
	next := write(t, dir, "next", aprlHeader+"new.phisher@phish.example,B,20260201\n")
	if err := os.Rename(next, list); err != nil {
		t.Fatal(err)
	}
	write(t, dir, "block", "now.blocked@else.example\n")
	if err := p.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Lookup("new.phisher@phish.example"); !ok {
		t.Error("reloaded list: new address not listed")
	}
	if _, ok := p.Lookup("verify.desk@phish.example"); ok {
		t.Error("reloaded list: removed address still listed")
	}
	if _, ok := p.Lookup("now.blocked@else.example"); !ok {
		t.Error("reloaded blocklist not used")
	}
	if err := os.Remove(list); err != nil {
		t.Fatal(err)
	}
	if err := p.Reload(); err == nil {
		t.Error("reload of a missing list: no error")
	}
	if _, ok := p.Lookup("new.phisher@phish.example"); !ok {
		t.Error("missing list file dropped the previous list")
	}
}

func TestBuildPhishersErrors(t *testing.T) {
	cfg := config.Default()
	cfg.Phishers.Lists = []string{filepath.Join(t.TempDir(), "missing")}
	if _, err := Build(cfg, Options{}); err == nil || !strings.Contains(err.Error(), "phishers") {
		t.Fatalf("missing list: %v", err)
	}
}

func TestHeaderAddresses(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string
	}{
		{"", ""},
		{"a@b.example", "a@b.example"},
		{"Help Desk <Verify.Desk@drop.example>", "Verify.Desk@drop.example"},
		{`"Desk, IT" <x@y.example>, z@w.example`, "x@y.example z@w.example"},
		{"broken <<x@y.example> ; other@z.example", "x@y.example other@z.example"},
	} {
		if got := strings.Join(headerAddresses(c.in), " "); got != c.want {
			t.Errorf("headerAddresses(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func FuzzHeaderAddresses(f *testing.F) {
	for _, s := range []string{"a@b", "N <a@b>", `"x" <a@b>, c@d`, "<<@>>", "=?utf-8?q?x?= <a@b>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// Every address found needs an @ of its own in the input.
		out := headerAddresses(s)
		if len(out) > strings.Count(s, "@") {
			t.Fatalf("%d addresses from %d @ in %q", len(out), strings.Count(s, "@"), s)
		}
		for _, a := range out {
			if !strings.Contains(a, "@") {
				t.Fatalf("%q: not an address", a)
			}
		}
	})
}

// TestCampaignNamesEveryAccount: a lure sent by two accounts is flagged on
// the second with both named, and only on messages with a body (the
// policy path has none).
func TestCampaignNamesEveryAccount(t *testing.T) {
	cfg := config.Default()
	cfg.Novelty.Learning = 0
	set, err := Build(cfg, Options{NoveltyKey: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	if set.Campaign == nil {
		t.Fatal("campaign detector not built by default")
	}
	body := "Subject: Mailbox quota\r\n\r\nYour mailbox is over its storage quota and will be suspended. Verify your account at https://verify.example.net/x and sign in with your password today.\r\n"
	now := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	send := func(account, rcpt string, withBody bool) []engine.Finding {
		sub := &engine.Submission{Time: now, Account: account, Sender: account, Recipients: []string{rcpt}, RecipientCount: 1, Subject: "Mailbox quota", Stage: engine.StageEOM}
		if withBody {
			sub.Body = []byte(body)
		}
		set.Novelty.Outbound(context.Background(), sub)
		return set.Campaign.Outbound(context.Background(), sub)
	}
	for i := range 5 {
		if f := send("a@example.edu", fmt.Sprintf("p%d@example.edu", i), false); f != nil {
			t.Fatalf("a message without a body was fingerprinted: %v", f)
		}
	}
	send("a@example.edu", "c1@example.edu", true)
	send("b@example.edu", "c2@example.edu", true)
	send("b@example.edu", "c3@example.edu", true)
	f := send("b@example.edu", "c4@example.edu", true)
	if len(f) != 1 || f[0].Reason != ReasonPhishingRun || f[0].Family != verdict.Campaign {
		t.Fatalf("findings %+v", f)
	}
	if !strings.Contains(f[0].Evidence, "2 accounts sent it today") || !strings.Contains(f[0].Evidence, "a@example.edu") || !strings.Contains(f[0].Evidence, "b@example.edu") {
		t.Errorf("evidence %q", f[0].Evidence)
	}
	if strings.Contains(f[0].Evidence, "verify.example.net") || strings.Contains(f[0].Evidence, "quota") {
		t.Errorf("evidence shows content: %q", f[0].Evidence)
	}
}

// TestMarkedSpamTextHeldFromAnyAccount: once the text is marked as spam,
// another account's message with it is held at once, even to known
// recipients and during the learning period; the hold record gets the
// prints.
func TestMarkedSpamTextHeldFromAnyAccount(t *testing.T) {
	set, err := Build(config.Default(), Options{NoveltyKey: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("Subject: Prize\r\n\r\nCongratulations, you have been selected to receive a cash prize; send your bank details and a processing fee to claim it today.\r\n")
	now := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	sub := func(account string) *engine.Submission {
		s := &engine.Submission{Time: now, Account: account, Sender: account, Recipients: []string{"x@example.org"}, RecipientCount: 1, Subject: "Prize", Stage: engine.StageEOM, Body: body}
		set.Novelty.Outbound(context.Background(), s)
		return s
	}
	first := sub("a@example.edu")
	if f := set.Campaign.Outbound(context.Background(), first); len(f) != 0 || len(first.Prints) == 0 {
		t.Fatalf("first message: %v, prints %v", f, first.Prints)
	}
	set.Campaign.Tracker.MarkSpam(campaign.ParsePrints(first.Prints), now)
	for _, acct := range []string{"b@example.edu", "b@example.edu"} { // the second time to a known recipient
		f := set.Campaign.Outbound(context.Background(), sub(acct))
		if len(f) != 1 || f[0].Reason != ReasonMarkedSpamText || f[0].DryRun || f[0].Action != engine.ActionHold {
			t.Fatalf("%s: %+v", acct, f)
		}
		if !strings.Contains(f[0].Evidence, "a@example.edu") {
			t.Errorf("evidence does not name the other sender: %q", f[0].Evidence)
		}
	}
}

// TestEveryReasonSaysWhatLetsThrough: the hold page's catalogue covers
// every built-in reason.
func TestEveryReasonSaysWhatLetsThrough(t *testing.T) {
	for _, r := range append(BuiltinReasons(), pwleak.ReasonPasswordLeak) {
		if api.LetThrough[string(r)] == "" {
			t.Errorf("reason %s: no entry in api.LetThrough", r)
		}
	}
}

// TestNewLinkDomain: a link host the site never carried, reaching 20
// first-time outside recipients in its first day, is flagged; the same
// with the sender's own domain's links or colleagues as recipients is not.
func TestNewLinkDomain(t *testing.T) {
	cfg := config.Default()
	cfg.Novelty.Learning = 0
	set, err := Build(cfg, Options{NoveltyKey: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	n := 0
	send := func(account, link string, rcptDomain string, rcpts int) []engine.Finding {
		n++
		body := fmt.Sprintf("Subject: news %d\r\n\r\nThe registration for the %d spring meeting is open at %s until the end of the month, please register early.\r\n", n, n, link)
		sub := &engine.Submission{Time: now.Add(time.Duration(n) * time.Minute), Account: account, Sender: account, Subject: fmt.Sprintf("news %d", n), Stage: engine.StageEOM, Body: []byte(body)}
		for i := range rcpts {
			sub.Recipients = append(sub.Recipients, fmt.Sprintf("r%d.%d@%s", n, i, rcptDomain))
		}
		sub.RecipientCount = rcpts
		set.Novelty.Outbound(context.Background(), sub)
		return set.Campaign.Outbound(context.Background(), sub)
	}
	if f := send("a@example.edu", "https://events.example.edu/spring", "partner.example", 30); len(f) != 0 {
		t.Errorf("own domain's link: %+v", f)
	}
	if f := send("a@example.edu", "https://spring-meeting.example.net/reg", "example.edu", 30); len(f) != 0 {
		t.Errorf("a new link to colleagues: %+v", f)
	}
	if f := send("b@example.edu", "https://bit-offer.example.com/reg", "far.example", 12); len(f) != 0 {
		t.Errorf("12 outside recipients: %+v", f)
	}
	f := send("c@example.edu", "https://bit-offer.example.com/reg2", "far2.example", 10)
	if len(f) != 1 || f[0].Reason != ReasonNewLinkDomain || f[0].Family != verdict.Campaign {
		t.Fatalf("22 outside recipients on its first day: %+v", f)
	}
}

// TestCampaignAcrossAccounts: three accounts sending one text, two
// messages each to new outside people, are judged together: no account
// alone is a run, the site's day is.
func TestCampaignAcrossAccounts(t *testing.T) {
	cfg := config.Default()
	cfg.Novelty.Learning = 0
	set, err := Build(cfg, Options{NoveltyKey: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("Subject: Grant\r\n\r\nYou have been selected for a research grant of ten thousand dollars; send your bank details and a copy of your identity card to claim it this week.\r\n")
	now := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	var last []engine.Finding
	n := 0
	for _, acct := range []string{"a@example.edu", "b@example.edu", "c@example.edu"} {
		for range 2 {
			n++
			sub := &engine.Submission{Time: now.Add(time.Duration(n) * time.Minute), Account: acct, Sender: acct, Subject: "Grant", Stage: engine.StageEOM, Body: body,
				Recipients: []string{fmt.Sprintf("x%d@far%d.example", n, n), fmt.Sprintf("y%d@far%d.example", n, n)}, RecipientCount: 2}
			set.Novelty.Outbound(context.Background(), sub)
			last = set.Campaign.Outbound(context.Background(), sub)
			if acct != "c@example.edu" && len(last) != 0 {
				t.Fatalf("%s, message %d: %+v", acct, n, last)
			}
		}
	}
	if len(last) != 1 || last[0].Reason != ReasonCampaignAcrossAccounts || !strings.Contains(last[0].Evidence, "a@example.edu") {
		t.Fatalf("third account: %+v", last)
	}
}

// TestForgetIdleAccounts: every detector that keeps per-account state
// forgets an account idle past engine.forget_idle_after, in memory and in
// the store (its snapshot is deleted at the next save); an account that
// sent since keeps its state (issue 13: memory only grew).
func TestForgetIdleAccounts(t *testing.T) {
	cfg := config.Default()
	cfg.Novelty.Learning = 0
	set, err := Build(cfg, Options{NoveltyKey: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("Subject: minutes\r\n\r\nThe minutes of the meeting are at https://docs.example.edu/m and the next one is on Tuesday.\r\n")
	send := func(account string, at time.Time) {
		sub := &engine.Submission{Time: at, Account: account, AccountSource: engine.SourceSASL, Sender: account, Recipients: []string{"colleague@example.edu"},
			RecipientCount: 1, Subject: "minutes", Stage: engine.StageEOM, Path: engine.PathMilter, Body: body,
			Origin: netip.MustParseAddr("198.51.100.7")}
		for _, d := range set.All() {
			d.Outbound(context.Background(), sub)
		}
	}
	send("idle@example.edu", t0)
	send("busy@example.edu", t0)
	sns := set.Snapshotters()
	holders := map[string]bool{}
	for _, sn := range sns {
		if _, ok := sn.Dirty()["idle@example.edu"]; ok {
			holders[sn.Prefix] = true
		}
	}
	for _, p := range []string{"baseline\x00", "novelty\x00", "campaign\x00", "origin\x00"} {
		if !holders[p] {
			t.Fatalf("%q keeps no state for the account: the test sends too little", p)
		}
	}
	later := t0.Add(72 * time.Hour)
	send("busy@example.edu", later.Add(-time.Hour))
	kept := set.Forget(later, 48*time.Hour)
	for name, n := range kept {
		if n != 1 {
			t.Errorf("%s keeps %d accounts, want 1 (busy)", name, n)
		}
	}
	for _, sn := range sns {
		if !holders[sn.Prefix] {
			continue
		}
		d := sn.Dirty()
		if v, ok := d["idle@example.edu"]; !ok || v != nil {
			t.Errorf("%q: idle account's snapshot not deleted (present %v)", sn.Prefix, ok)
		}
		if v := d["busy@example.edu"]; v == nil {
			t.Errorf("%q: busy account's state not saved", sn.Prefix)
		}
	}
	// Without a bound each detector's own window decides: three days is
	// within all of them.
	set2, _ := Build(cfg, Options{NoveltyKey: make([]byte, 32)})
	set = set2
	send("idle@example.edu", t0)
	for name, n := range set.Forget(later, 0) {
		if n != 1 {
			t.Errorf("%s forgot an account within its window (%d kept)", name, n)
		}
	}
}

// sharedMemory stands in for the cluster's memory (redisnovelty, tested
// against Redis there): it answers with what the test sets.
type sharedMemory struct {
	st    novelty.Stats
	ok    bool
	since time.Time
}

func (m *sharedMemory) Observe(context.Context, string, []string, time.Time) (novelty.Stats, bool, error) {
	return m.st, m.ok, nil
}
func (m *sharedMemory) Peek(context.Context, string, time.Time) (novelty.Stats, bool) {
	return m.st, m.ok
}
func (m *sharedMemory) Since() time.Time { return m.since }

// TestNoveltyShared: in cluster mode the detector judges with the shared
// memory's stats and its learning start, never with its own tracker;
// while the shared memory cannot answer a message gets no novelty facts
// and no finding, not every recipient counted first-time.
func TestNoveltyShared(t *testing.T) {
	tr := novelty.New(novelty.Options{Key: []byte("test")})
	n := NewNovelty(tr, NoveltyOptions{FirstTimeHour: 20, Learning: 24 * time.Hour, Action: engine.ActionHold})
	m := &sharedMemory{}
	n.Shared = m
	ctx := context.Background()
	sub := func() *engine.Submission {
		rs := rcpts("s", 30)
		return &engine.Submission{Time: t0, Stage: engine.StageEOM, Account: "u@example.edu", Sender: "u@example.edu", Recipients: rs, RecipientCount: len(rs)}
	}
	s := sub()
	if fs := n.Outbound(ctx, s); len(fs) != 0 || s.Novelty != nil {
		t.Fatalf("shared memory down: findings %+v, facts %+v", fs, s.Novelty)
	}
	m.ok, m.st = true, novelty.Stats{New: 30, Distinct: 30, FirstTime1h: 45}
	s = sub()
	if fs := n.Outbound(ctx, s); len(fs) != 1 || !fs[0].DryRun {
		t.Fatalf("before the cluster's learning start is known: %+v", fs)
	}
	m.since = t0.Add(-48 * time.Hour)
	s = sub()
	fs := n.Outbound(ctx, s)
	if len(fs) != 1 || fs[0].DryRun || !strings.Contains(fs[0].Evidence, "first_time_recipients_1h=45") || s.Novelty.FirstTime1h != 45 {
		t.Fatalf("shared stats: %+v %+v", fs, s.Novelty)
	}
	if st := tr.Peek("u@example.edu", t0); st.Known != 0 {
		t.Fatalf("the node's own tracker recorded %d recipients", st.Known)
	}
}

// TestPhishTrustEveryValue: every phish.trust_tags value reaches phishmem
// as the mode of the same name (an unmapped one would fall back to auto).
func TestPhishTrustEveryValue(t *testing.T) {
	for _, name := range []string{"auto", "reinjection", "first-pass"} {
		var v config.TrustTags
		if err := v.UnmarshalText([]byte(name)); err != nil {
			t.Fatal(err)
		}
		if got := phishTrust[v]; got != name {
			t.Errorf("trust_tags %s reaches phishmem as %q", name, got)
		}
	}
}
