// Package countertest is the conformance suite of store.Counters: the
// in-memory counters of a single node and the shared counters of cluster
// mode (Redis) must give the same totals for the same charges, and two
// nodes charging one backend at once must give the totals one node would.
package countertest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/counter"
	"github.com/mailbrake/mailbrake/internal/store"
)

// Backend opens counters for a test: New returns a fresh, empty backend
// and a function that returns another client of the same backend (a second
// node). Both arrange their own cleanup.
type Backend func(t *testing.T) (first store.Counters, another func() store.Counters)

// Series is implemented by counters that can chart an account's day.
type Series interface {
	Series(acct string, t time.Time) []counter.Point
}

// Run runs the suite.
func Run(t *testing.T, open Backend) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, open Backend)
	}{
		{"SlidingWindows", testSlidingWindows},
		{"MessageKeyChargedOnce", testMessageKeyChargedOnce},
		{"MessageKeyChargedUpTo", testMessageKeyChargedUpTo},
		{"AccountsApart", testAccountsApart},
		{"TwoNodesAtOnce", testTwoNodesAtOnce},
		{"TwoNodesOneMessage", testTwoNodesOneMessage},
		{"AsyncChargeSeenByNextCall", testAsyncOrdered},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

func charge(t *testing.T, c store.Counters, acct, key string, at time.Time, m, r int64) store.Totals {
	t.Helper()
	got, err := c.Charge(context.Background(), acct, key, at, m, r)
	if err != nil {
		t.Fatalf("Charge(%s, %q): %v", acct, key, err)
	}
	return got
}

func peek(t *testing.T, c store.Counters, acct string, at time.Time) store.Totals {
	t.Helper()
	got, err := c.Peek(context.Background(), acct, at)
	if err != nil {
		t.Fatalf("Peek(%s): %v", acct, err)
	}
	return got
}

// testSlidingWindows: the hour window is (now-60m, now] to the minute, the
// day window a day to five minutes.
func testSlidingWindows(t *testing.T, open Backend) {
	c, _ := open(t)
	for i := range 10 {
		charge(t, c, "u@x", "", t0.Add(time.Duration(i)*time.Minute), 1, 5)
	}
	if got, want := peek(t, c, "u@x", t0.Add(9*time.Minute)), (store.Totals{Messages1h: 10, Recipients1h: 50, Messages24h: 10, Recipients24h: 50}); got != want {
		t.Fatalf("after 10 charges: %+v", got)
	}
	// 65 minutes after the first charge, minutes 0–5 have left the hour.
	if got := peek(t, c, "u@x", t0.Add(65*time.Minute)); got.Messages1h != 4 || got.Recipients1h != 20 || got.Messages24h != 10 {
		t.Fatalf("after 65m: %+v", got)
	}
	// A charge returns the totals including it.
	if got := charge(t, c, "u@x", "", t0.Add(65*time.Minute), 2, 7); got.Messages1h != 6 || got.Recipients1h != 27 || got.Messages24h != 12 || got.Recipients24h != 57 {
		t.Fatalf("charge after 65m: %+v", got)
	}
	if got := peek(t, c, "u@x", t0.Add(24*time.Hour+70*time.Minute)); got != (store.Totals{}) {
		t.Fatalf("a day later: %+v", got)
	}
	if got := peek(t, c, "nobody@x", t0); got != (store.Totals{}) {
		t.Fatalf("unknown account: %+v", got)
	}
	if s, ok := c.(Series); ok {
		ps := s.Series("u@x", t0.Add(65*time.Minute))
		var m, r int64
		for _, p := range ps {
			m, r = m+p.Messages, r+p.Recipients
			if p.Time.Unix()%300 != 0 {
				t.Errorf("point at %s is not on five minutes", p.Time)
			}
		}
		if len(ps) != 3 || m != 12 || r != 57 || !ps[0].Time.Equal(t0) || !ps[1].Time.Equal(t0.Add(5*time.Minute)) {
			t.Errorf("series: %+v", ps)
		}
	}
}

// testMessageKeyChargedOnce: a key is a message; another account's same
// key another; after an hour the key may be reused.
func testMessageKeyChargedOnce(t *testing.T, open Backend) {
	c, _ := open(t)
	a := charge(t, c, "u", "4ABC", t0, 1, 60)
	b := charge(t, c, "u", "4ABC", t0.Add(time.Second), 1, 60)
	if a != b || a.Messages1h != 1 || a.Recipients1h != 60 {
		t.Fatalf("same key charged twice: %+v %+v", a, b)
	}
	if o := charge(t, c, "v", "4ABC", t0, 1, 1); o.Messages1h != 1 {
		t.Fatalf("other account: %+v", o)
	}
	if d := charge(t, c, "u", "4ABC", t0.Add(2*time.Hour), 1, 1); d.Messages24h != 2 {
		t.Fatalf("reused key: %+v", d)
	}
}

// testMessageKeyChargedUpTo: reported recipient by recipient, then whole,
// a message counts at its largest report, once.
func testMessageKeyChargedUpTo(t *testing.T, open Backend) {
	c, _ := open(t)
	for n := int64(1); n <= 3; n++ {
		if got := charge(t, c, "u", "i:7", t0, 1, n); got.Messages1h != 1 || got.Recipients1h != n {
			t.Fatalf("after RCPT %d: %+v", n, got)
		}
	}
	if got := charge(t, c, "u", "i:7", t0, 1, 5); got.Messages1h != 1 || got.Recipients1h != 5 {
		t.Fatalf("end of message: %+v", got)
	}
	if got := charge(t, c, "u", "i:7", t0, 1, 4); got.Messages1h != 1 || got.Recipients1h != 5 {
		t.Fatalf("smaller report: %+v", got)
	}
}

// testAccountsApart: names that share a prefix, or hold a NUL (a score
// family's key), are different accounts.
func testAccountsApart(t *testing.T, open Backend) {
	c, _ := open(t)
	charge(t, c, "a@x", "", t0, 1, 1)
	charge(t, c, "a@x\x00volume", "", t0, 5, 1)
	charge(t, c, "a@xy", "", t0, 2, 2)
	if got := peek(t, c, "a@x", t0); got.Messages1h != 1 {
		t.Fatalf("a@x: %+v", got)
	}
	if got := peek(t, c, "a@x\x00volume", t0); got.Messages1h != 5 {
		t.Fatalf("a@x's family: %+v", got)
	}
}

// testTwoNodesAtOnce: two clients charging the same account at the same
// moment lose and double nothing.
func testTwoNodesAtOnce(t *testing.T, open Backend) {
	c, another := open(t)
	nodes := []store.Counters{c, another()}
	const per = 400
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := nodes[g%2]
			for i := range per {
				if _, err := n.Charge(context.Background(), "shared", "", t0.Add(time.Duration(i%50)*time.Second), 1, 3); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for i, n := range nodes {
		if got := peek(t, n, "shared", t0.Add(time.Minute)); got.Messages1h != 8*per || got.Recipients24h != 3*8*per {
			t.Fatalf("node %d sees %+v, want %d messages", i, got, 8*per)
		}
	}
}

// testTwoNodesOneMessage: one message charged under its key from two
// clients at once (its policy and milter calls on different connections)
// counts once, at its largest report.
func testTwoNodesOneMessage(t *testing.T, open Backend) {
	c, another := open(t)
	nodes := []store.Counters{c, another()}
	var wg sync.WaitGroup
	for k := range 50 {
		for i, n := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := n.Charge(context.Background(), "u", fmt.Sprintf("q%d", k), t0, 1, int64(10+i)); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	if got := peek(t, c, "u", t0); got.Messages1h != 50 || got.Recipients1h != 50*11 {
		t.Fatalf("%+v, want 50 messages of 11 recipients", got)
	}
}

// testAsyncOrdered: a charge sent without waiting (the policy path's RCPT)
// is seen by the next call, as the next RCPT's Peek must see it; every
// done is called once, without an error.
func testAsyncOrdered(t *testing.T, open Backend) {
	c, _ := open(t)
	a, ok := c.(store.AsyncCharger)
	if !ok {
		t.Skip("the backend charges synchronously only")
	}
	var wg sync.WaitGroup
	for i := range 300 {
		wg.Add(1)
		a.ChargeAsync(context.Background(), "rcpt@x", "", t0, 1, 2, func(err error) {
			if err != nil {
				t.Error(err)
			}
			wg.Done()
		})
		if got := peek(t, c, "rcpt@x", t0); got.Messages1h != int64(i+1) || got.Recipients1h != int64(2*(i+1)) {
			t.Fatalf("after %d charges sent without waiting, Peek sees %+v", i+1, got)
		}
	}
	wg.Wait()
}
