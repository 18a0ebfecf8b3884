package origin

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

var key = []byte("0123456789abcdef0123456789abcdef")

func TestNewPrefixAndSharedOrigin(t *testing.T) {
	tr := New(Options{Key: key})
	t0 := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	home := netip.MustParseAddr("198.51.100.7")
	// An account's first origin has nothing to compare with.
	if st := tr.Observe("a@x", home, t0); st.NewPrefix || st.Known != 0 {
		t.Fatalf("first origin: %+v", st)
	}
	// The same /24 is not new; another network is.
	if st := tr.Observe("a@x", netip.MustParseAddr("198.51.100.200"), t0.Add(time.Hour)); st.NewPrefix || st.Known != 1 {
		t.Errorf("same /24: %+v", st)
	}
	kit := netip.MustParseAddr("203.0.113.66")
	if st := tr.Observe("a@x", kit, t0.Add(2*time.Hour)); !st.NewPrefix || st.NewTo != 1 {
		t.Errorf("new network: %+v", st)
	}
	// The kit's server works through two more accounts with history.
	for i, acct := range []string{"b@x", "c@x"} {
		tr.Observe(acct, netip.MustParseAddr(fmt.Sprintf("192.0.2.%d", i+1)), t0)
		st := tr.Observe(acct, kit, t0.Add(time.Duration(3+i)*time.Hour))
		if st.NewTo != 2+i || len(st.Accounts) != 2+i {
			t.Errorf("%s: %+v", acct, st)
		}
	}
	// A brand-new account from the kit does not count: nothing was new
	// to it.
	if st := tr.Observe("fresh@x", kit, t0.Add(5*time.Hour)); st.NewTo != 3 {
		t.Errorf("fresh account: %+v", st)
	}
	// A day later the old uses no longer count.
	if st := tr.Observe("a@x", kit, t0.Add(30*time.Hour)); st.NewTo != 0 || st.NewPrefix {
		t.Errorf("a day later: %+v", st)
	}
	// IPv6 by /48; IPv4-mapped is IPv4.
	if p := Prefix(netip.MustParseAddr("2001:db8:1:2::5")); p.String() != "2001:db8:1::/48" {
		t.Errorf("v6 prefix %s", p)
	}
	if p := Prefix(netip.MustParseAddr("::ffff:203.0.113.9")); p.String() != "203.0.113.0/24" {
		t.Errorf("mapped prefix %s", p)
	}
}

func TestBounded(t *testing.T) {
	tr := New(Options{Key: key, MaxPerAccount: 8, MaxSite: 100})
	t0 := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	for i := range 1000 {
		tr.Observe("a@x", netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1}), t0.Add(time.Duration(i)*time.Second))
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if n := len(tr.acc["a@x"].prefixes); n > 8 {
		t.Errorf("%d prefixes kept, bound 8", n)
	}
	if n := len(tr.site); n > 100 {
		t.Errorf("%d site addresses kept, bound 100", n)
	}
}

func TestSnapshot(t *testing.T) {
	tr := New(Options{Key: key})
	t0 := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	tr.Observe("a@x", netip.MustParseAddr("198.51.100.7"), t0)
	tr.Observe("a@x", netip.MustParseAddr("192.0.2.7"), t0)
	snaps := tr.Dirty()
	back := New(Options{Key: key})
	if err := back.Restore(snaps); err != nil {
		t.Fatal(err)
	}
	if st := back.Observe("a@x", netip.MustParseAddr("192.0.2.9"), t0.Add(time.Hour)); st.NewPrefix || st.Known != 2 {
		t.Errorf("after restore: %+v", st)
	}
	if err := New(Options{Key: []byte("another key 0123456789abcdef0123")}).Restore(snaps); err == nil {
		t.Error("restored under another key")
	}
}

func FuzzSnapshot(f *testing.F) {
	tr := New(Options{Key: key})
	tr.Observe("a@x", netip.MustParseAddr("198.51.100.7"), time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC))
	for _, b := range tr.Dirty() {
		f.Add(b)
	}
	f.Add([]byte{snapVersion, 1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		tr := New(Options{Key: key, MaxPerAccount: 8})
		ps, err := tr.decode(b)
		if err == nil && len(ps) > 8 {
			t.Fatalf("%d prefixes past the bound", len(ps))
		}
	})
}
