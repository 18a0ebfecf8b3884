package origin

import (
	"net/netip"
	"testing"
	"time"
)

// TestLearnedAcrossNodes: an account's origins seen on one node are known
// on the other that applied its events: the same address is not a new
// prefix there, and one address submitting for several accounts through
// two nodes is counted across both.
func TestLearnedAcrossNodes(t *testing.T) {
	a, b := New(Options{Key: key}), New(Options{Key: key})
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	home := netip.MustParseAddr("198.51.100.7")
	for i := range 3 {
		at := t0.Add(time.Duration(i) * time.Hour)
		a.Observe("u@example.edu", home, at)
		if err := b.ApplyLearned(Event("u@example.edu", home, at)); err != nil {
			t.Fatal(err)
		}
	}
	if st := b.Observe("u@example.edu", home, t0.Add(4*time.Hour)); st.NewPrefix || st.Known != 1 {
		t.Fatalf("on b, the origin a saw: %+v", st)
	}
	// A new address used for accounts through both nodes.
	bad := netip.MustParseAddr("203.0.113.9")
	var last Stats
	for i, acct := range []string{"v@example.edu", "w@example.edu", "x@example.edu"} {
		at := t0.Add(time.Duration(5+i) * time.Hour)
		// Each account has a history at home first.
		for _, tr := range []*Tracker{a, b} {
			tr.Observe(acct, home, at.Add(-time.Hour))
		}
		node, other := a, b
		if i%2 == 1 {
			node, other = b, a
		}
		last = node.Observe(acct, bad, at)
		if err := other.ApplyLearned(Event(acct, bad, at)); err != nil {
			t.Fatal(err)
		}
	}
	if last.NewTo != 3 {
		t.Fatalf("the address was new to %d accounts over both nodes, want 3: %+v", last.NewTo, last)
	}
	for _, bad := range []string{"", "{}", `{"a":"u","ip":"","at":5}`, `{"a":"","ip":"192.0.2.1","at":5}`, `{"a":"u","ip":"192.0.2.1","at":0}`} {
		if err := b.ApplyLearned([]byte(bad)); err == nil {
			t.Errorf("%q applied", bad)
		}
	}
}

// FuzzApplyLearned: any event from the stream is applied or refused,
// never a panic.
func FuzzApplyLearned(f *testing.F) {
	f.Add(Event("u@x", netip.MustParseAddr("192.0.2.1"), time.Unix(1764579600, 0)))
	f.Add(Event("u@x", netip.MustParseAddr("2001:db8::1"), time.Unix(1764579600, 0)))
	f.Add([]byte(`{"a":"u","ip":"::ffff:1.2.3.4","at":1}`))
	f.Fuzz(func(t *testing.T, ev []byte) {
		New(Options{Key: key, MaxPerAccount: 4, MaxSite: 16}).ApplyLearned(ev)
	})
}
