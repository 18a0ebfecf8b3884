package campaign

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var key = []byte("0123456789abcdef0123456789abcdef")

const lure = `Dear %s,

Your mailbox has exceeded its storage quota of 2048 MB and will be
suspended within %d hours. To keep receiving mail, verify your account at
https://mail-verify.example.net/login?u=%s and sign in with your password.

IT Service Desk
`

func TestPrintIgnoresWhatVariesPerRecipient(t *testing.T) {
	tr := New(Options{Key: key})
	a := tr.Print("Mailbox quota", fmt.Sprintf(lure, "Ann", 24, "ann"))
	b := tr.Print("RE: Mailbox quota", fmt.Sprintf(lure, "Dr. Bob Jones", 48, "bob.jones@example.edu"))
	if a.Text == 0 || a.Text != b.Text {
		t.Errorf("text prints differ: %x %x", a.Text, b.Text)
	}
	if a.Links == 0 || a.Links != b.Links {
		t.Errorf("link prints differ: %x %x", a.Links, b.Links)
	}
	if !a.Lure {
		t.Error("a quota-and-password lure with a link is not a lure")
	}
	other := tr.Print("Lunch", "Hi Ann,\n\nshall we meet for lunch on Thursday at the usual place near the library? I can book a table for four people.\n\nCheers\n-- \nCarl")
	if other.Text == a.Text || other.Lure {
		t.Errorf("an unrelated message: %+v", other)
	}
	short := tr.Print("", "thanks, see you tomorrow")
	if short.Text != 0 || short.Links != 0 || len(short.Keys()) != 0 {
		t.Errorf("a short message has a print: %+v", short)
	}
	// Another key: nothing matches.
	if New(Options{Key: []byte("another key 0123456789abcdef0123")}).Print("Mailbox quota", fmt.Sprintf(lure, "Ann", 24, "ann")).Text == a.Text {
		t.Error("prints do not depend on the key")
	}
}

func TestNormaliseSignatureAndGreeting(t *testing.T) {
	n := Normalise("Fwd: Re: Report", "Hello Ann,\nThe report for Q3 is at www.Example.org/q3 (see page 4).\n-- \nAnn Other, 555-1234")
	if want := "report the report for q is at link:www.example.org see page"; n.Text != want {
		t.Errorf("text %q, want %q", n.Text, want)
	}
	if len(n.Hosts) != 1 || n.Hosts[0] != "www.example.org" {
		t.Errorf("hosts %v", n.Hosts)
	}
}

// TestTrackerWindows: a low-and-slow run of one text to three new people a
// message, and a week's forgetting.
func TestTrackerWindows(t *testing.T) {
	tr := New(Options{Key: key})
	p := tr.Print("Invoice", fmt.Sprintf(lure, "x", 1, "x"))
	start := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	var s Stats
	for i := range 15 {
		s = tr.Observe("mallory@example.edu", p, 3, 3, start.Add(time.Duration(i)*32*time.Minute))
	}
	if s.Messages24h != 15 || s.New24h != 45 || s.External24h != 45 || s.Messages1h < 1 || s.Messages1h > 2 || s.Messages7d != 15 {
		t.Errorf("stats after a day: %+v", s)
	}
	s = tr.Observe("mallory@example.edu", p, 3, 3, start.Add(3*24*time.Hour))
	if s.Messages24h != 1 || s.Messages7d != 16 || s.New7d != 48 {
		t.Errorf("stats three days later: %+v", s)
	}
	s = tr.Observe("mallory@example.edu", p, 3, 3, start.Add(9*24*time.Hour))
	if s.Messages7d != 2 {
		t.Errorf("stats nine days later: %+v", s)
	}
	// A message to known recipients only starts nothing.
	q := tr.Print("Minutes", "Minutes of the faculty meeting: the budget was approved, the new course list is attached, next meeting in two weeks in room twelve.")
	if s := tr.Observe("ann@example.edu", q, 0, 0, start); s.Messages24h != 0 {
		t.Errorf("a message to known recipients started a run: %+v", s)
	}
	// Other accounts sending the same print.
	tr.Observe("bob@example.edu", p, 1, 0, start.Add(9*24*time.Hour))
	s = tr.Observe("carol@example.edu", p, 1, 0, start.Add(9*24*time.Hour+time.Minute))
	if s.Accounts24h != 3 {
		t.Errorf("accounts 24h = %d, want 3", s.Accounts24h)
	}
	if got := tr.Accounts(p, start.Add(9*24*time.Hour+time.Minute)); len(got) != 3 {
		t.Errorf("accounts %v", got)
	}
}

// TestTrackerBounded: an account sending only different messages keeps at
// most MaxPerAccount prints, and the memory per print is small.
func TestTrackerBounded(t *testing.T) {
	tr := New(Options{Key: key, MaxPerAccount: 64, MaxSite: 1000})
	start := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	for i := range 5000 {
		p := tr.Print("", fmt.Sprintf("message number %s is about topic %s and nothing else at all in this quite long text", strings.Repeat("a", i%50+1), strings.Repeat("b", i/50+1)))
		tr.Observe(fmt.Sprintf("u%d@example.edu", i%10), p, 1, 1, start.Add(time.Duration(i)*time.Second))
	}
	sz := tr.Size()
	if sz.Accounts != 10 || sz.Prints > 10*64 || sz.SitePrints > 1000 {
		t.Errorf("size %+v", sz)
	}
}

func FuzzNormalise(f *testing.F) {
	f.Add("Re: quota", fmt.Sprintf(lure, "Ann", 24, "ann"))
	f.Add("", "Hi,\nhttp://[::1]:80/x www. https://%zz\n-- \n")
	f.Add("\xff", "dear\n\xfe\xff http://é.example/")
	f.Fuzz(func(t *testing.T, subject, body string) {
		n := Normalise(subject, body)
		if len(n.Text) > maxNormalised+256 {
			t.Fatalf("normalised text of %d bytes", len(n.Text))
		}
		for _, h := range n.Hosts {
			if !utf8.ValidString(h) || h == "" {
				t.Fatalf("host %q", h)
			}
		}
		if n.Words > 0 && n.Text == "" {
			t.Fatal("words without text")
		}
		// Deterministic.
		if m := Normalise(subject, body); m.Text != n.Text || m.Lure != n.Lure || len(m.Hosts) != len(n.Hosts) {
			t.Fatal("not deterministic")
		}
	})
}

// TestSnapshotRoundTrip: an account's runs survive a restart under the
// same key and are refused under another.
func TestSnapshotRoundTrip(t *testing.T) {
	tr := New(Options{Key: key})
	p := tr.Print("Invoice", fmt.Sprintf(lure, "x", 1, "x"))
	start := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	for i := range 4 {
		tr.Observe("m@example.edu", p, 3, 2, start.Add(time.Duration(i)*50*time.Minute))
	}
	snaps := tr.Dirty()
	if len(snaps) != 1 || len(tr.Dirty()) != 0 {
		t.Fatalf("dirty: %d, then %d", len(snaps), len(tr.Dirty()))
	}
	back := New(Options{Key: key})
	if err := back.Restore(snaps); err != nil {
		t.Fatal(err)
	}
	s := back.Observe("m@example.edu", p, 3, 2, start.Add(4*50*time.Minute))
	if s.Messages24h != 5 || s.New24h != 15 || s.External24h != 10 {
		t.Errorf("after restore: %+v", s)
	}
	other := New(Options{Key: []byte("another key 0123456789abcdef0123")})
	if err := other.Restore(snaps); err == nil || other.Size().Accounts != 0 {
		t.Errorf("restored under another key: %v", err)
	}
}

func FuzzSnapshot(f *testing.F) {
	tr := New(Options{Key: key})
	p := tr.Print("Invoice", fmt.Sprintf(lure, "x", 1, "x"))
	tr.Observe("m@example.edu", p, 3, 2, time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC))
	for _, b := range tr.Dirty() {
		f.Add(b)
	}
	f.Add([]byte{snapVersion})
	f.Fuzz(func(t *testing.T, b []byte) {
		tr := New(Options{Key: key, MaxPerAccount: 32})
		runs, trusted, err := tr.decode(b)
		if err != nil {
			return
		}
		if len(runs) > 32 || len(trusted) > maxTrusted {
			t.Fatalf("%d runs, %d trusted past the bounds", len(runs), len(trusted))
		}
		// What decodes encodes to a snapshot that decodes the same.
		again, againTrusted, err := tr.decode(tr.encode(&acct{runs: runs, trusted: trusted}))
		if err != nil || len(again) != len(runs) || len(againTrusted) != len(trusted) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// TestMarkSpam: a text marked as spam is known under any account and
// survives a restart; a message with the same links but its own text (a
// user forwarding the phish to the help desk with a note) is not.
func TestMarkSpam(t *testing.T) {
	tr := New(Options{Key: key})
	p := tr.Print("Mailbox quota", fmt.Sprintf(lure, "Ann", 24, "ann"))
	if got := ParsePrints(p.Strings()); got.Text != p.Text || got.Links != p.Links {
		t.Fatalf("prints round trip: %+v, want %+v", got, p)
	}
	if bad := ParsePrints([]string{"text:zz", "other:12", "links"}); bad.Text != 0 || bad.Links != 0 {
		t.Error("bad prints parsed")
	}
	tr.MarkSpam(ParsePrints(p.Strings()), time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC))
	if !tr.MarkedSpam(tr.Print("Re: Mailbox quota", fmt.Sprintf(lure, "Bob", 1, "bob"))) {
		t.Error("the same text from another sender is not known")
	}
	fwd := tr.Print("Fwd: Mailbox quota", "Is this real? I clicked nothing. Could you please check it for me, thanks a lot, Ann.\n\n"+fmt.Sprintf(lure, "Ann", 24, "ann"))
	if fwd.Links != p.Links || tr.MarkedSpam(fwd) {
		t.Errorf("a forward with a note of its own is marked (links equal: %v)", fwd.Links == p.Links)
	}
	back := New(Options{Key: key})
	if err := back.RestoreSpam(tr.SpamDirty()); err != nil {
		t.Fatal(err)
	}
	if !back.MarkedSpam(p) || len(tr.SpamDirty()) != 0 {
		t.Error("spam mark lost in a restart, or still dirty")
	}
	if err := New(Options{Key: []byte("another key 0123456789abcdef0123")}).RestoreSpam(map[string][]byte{"1": {snapVersion, 0, 0, 0, 0, 0, 0, 0, 0, 2}}); err == nil {
		t.Error("a mark under another key restored")
	}
}

// TestObserveHosts: a link host new to the site, the first-time
// recipients it reached in its first day, and the site's hosts kept
// across a restart.
func TestObserveHosts(t *testing.T) {
	tr := New(Options{Key: key})
	p := tr.Print("Offer", "Hello, see https://new-offer.example.net/x and https://www.example.org/ today for the details of the offer, thanks.")
	if len(p.Hosts) != 2 || len(p.HostNames) != 2 {
		t.Fatalf("hosts %v %v", p.Hosts, p.HostNames)
	}
	t0 := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	if hn := tr.ObserveHosts(p.Hosts, 8, t0); hn.New != 2 || hn.FirstDayRcpts != 8 {
		t.Errorf("first: %+v", hn)
	}
	if hn := tr.ObserveHosts(p.Hosts[:1], 15, t0.Add(time.Hour)); hn.New != 0 || hn.FirstDayRcpts != 23 {
		t.Errorf("same day: %+v", hn)
	}
	if hn := tr.ObserveHosts(p.Hosts[:1], 15, t0.Add(25*time.Hour)); hn.New != 0 || hn.FirstDayRcpts != 0 {
		t.Errorf("a day on: %+v", hn)
	}
	back := New(Options{Key: key})
	if err := back.RestoreHosts(tr.HostsDirty()); err != nil {
		t.Fatal(err)
	}
	if hn := back.ObserveHosts(p.Hosts, 1, t0.Add(26*time.Hour)); hn.New != 0 {
		t.Errorf("after restore the hosts are new: %+v", hn)
	}
	if tr.HostsDirty() != nil {
		t.Error("still dirty after a snapshot")
	}
	if err := New(Options{Key: []byte("another key 0123456789abcdef0123")}).RestoreHosts(back.HostsDirty()); err == nil {
		t.Error("hosts restored under another key")
	}
}

func FuzzHostsSnapshot(f *testing.F) {
	tr := New(Options{Key: key})
	tr.ObserveHosts([]uint64{1, 2, 3}, 5, time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC))
	f.Add(tr.HostsDirty()["hosts"])
	f.Add([]byte{snapVersion, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		tr := New(Options{Key: key})
		hosts, err := tr.decodeHosts(b)
		if err == nil && len(hosts) > maxHosts {
			t.Fatalf("%d hosts past the bound", len(hosts))
		}
	})
}

// TestSimilarTexts: a spun run (a few words changed per message) shares a
// similarity key and is counted as one run; unrelated texts share none.
func TestSimilarTexts(t *testing.T) {
	tr := New(Options{Key: key})
	base := "I am writing to share a private investment opportunity with a guaranteed monthly return that a few colleagues and I have been part of for two years now; our fund has helped many families in your area and we would like to include you; reply to this message and I will send you the brochure and all the details"
	spin := []string{"writing", "contacting you", "private", "exclusive", "monthly", "weekly", "families", "households"}
	start := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	var st Stats
	for i := range 6 {
		text := base
		if i > 0 {
			text = strings.Replace(text, spin[2*(i%4)], spin[2*(i%4)+1], 1)
		}
		p := tr.Print("Opportunity", text)
		st = tr.Observe("m@example.edu", p, 3, 3, start.Add(time.Duration(i)*30*time.Minute))
	}
	if st.Messages24h < 5 {
		t.Errorf("a spun run is not one run: %+v", st)
	}
	a := tr.Print("", base)
	b := tr.Print("", "Minutes of the faculty meeting: the budget for the new laboratory was approved, the course list for the spring term is attached, and the next meeting is in two weeks in the usual room on the second floor of the main building")
	for _, x := range a.Similar {
		for _, y := range b.Similar {
			if x == y {
				t.Error("unrelated texts share a similarity key")
			}
		}
	}
}
