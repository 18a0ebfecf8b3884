package novelty

import (
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

func TestObserve(t *testing.T) {
	type step struct {
		after time.Duration // since t0
		rcpts []string
		want  Stats
	}
	for _, tc := range []struct {
		name  string
		opts  Options
		steps []step
	}{
		{"first time then repeat", Options{LocalDomains: []string{"Example.org"}}, []step{
			{0, []string{"a@x.com", "b@example.org"}, Stats{New: 2, Distinct: 2, Domains: 2, NewExternal: 1, External: 1, FirstTime1h: 2, FirstTime24h: 2, Distinct1h: 2, Distinct24h: 2, Known: 2}},
			{time.Minute, []string{"a@x.com"}, Stats{New: 0, Distinct: 1, Domains: 1, NewExternal: 0, External: 1, FirstTime1h: 2, FirstTime24h: 2, Distinct1h: 2, Distinct24h: 2, Known: 2}},
			{2 * time.Minute, []string{"c@x.com", "a@x.com"}, Stats{New: 1, Distinct: 2, Domains: 1, NewExternal: 1, External: 2, FirstTime1h: 3, FirstTime24h: 3, Distinct1h: 3, Distinct24h: 3, Known: 3}},
		}},
		{"case and duplicates", Options{}, []step{
			{0, []string{"A@X.com", "a@x.COM", " <a@x.com> ", "", "b@x.com"}, Stats{New: 2, Distinct: 2, Domains: 1, NewExternal: 2, External: 2, FirstTime1h: 2, FirstTime24h: 2, Distinct1h: 2, Distinct24h: 2, Known: 2}},
			{time.Second, []string{"B@X.COM", "Ä@x.com"}, Stats{New: 1, Distinct: 2, Domains: 1, NewExternal: 1, External: 2, FirstTime1h: 3, FirstTime24h: 3, Distinct1h: 3, Distinct24h: 3, Known: 3}},
			{2 * time.Second, []string{"ä@X.com"}, Stats{New: 0, Distinct: 1, Domains: 1, NewExternal: 0, External: 1, FirstTime1h: 3, FirstTime24h: 3, Distinct1h: 3, Distinct24h: 3, Known: 3}},
		}},
		{"lookback expiry", Options{}, []step{
			{0, []string{"a@x.com"}, Stats{New: 1, Distinct: 1, Domains: 1, NewExternal: 1, External: 1, FirstTime1h: 1, FirstTime24h: 1, Distinct1h: 1, Distinct24h: 1, Known: 1}},
			{89 * 24 * time.Hour, []string{"b@x.com"}, Stats{New: 1, Distinct: 1, Domains: 1, NewExternal: 1, External: 1, FirstTime1h: 1, FirstTime24h: 1, Distinct1h: 1, Distinct24h: 1, Known: 2}},
			// a@ was last mailed 91 days ago: first-time again; b@ is known.
			{91 * 24 * time.Hour, []string{"a@x.com", "b@x.com"}, Stats{New: 1, Distinct: 2, Domains: 1, NewExternal: 1, External: 2, FirstTime1h: 1, FirstTime24h: 1, Distinct1h: 2, Distinct24h: 2, Known: 2}},
		}},
		{"cap evicts least recently seen", Options{MaxPerAccount: 3}, []step{
			{0, []string{"a@x", "b@x", "c@x"}, Stats{New: 3, Distinct: 3, Domains: 1, NewExternal: 3, External: 3, FirstTime1h: 3, FirstTime24h: 3, Distinct1h: 3, Distinct24h: 3, Known: 3}},
			{time.Minute, []string{"a@x"}, Stats{Distinct: 1, Domains: 1, NewExternal: 0, External: 1, FirstTime1h: 3, FirstTime24h: 3, Distinct1h: 3, Distinct24h: 3, Known: 3}},
			// d@ evicts b@ or c@ (both older than a@), never a@.
			{2 * time.Minute, []string{"d@x"}, Stats{New: 1, Distinct: 1, Domains: 1, NewExternal: 1, External: 1, FirstTime1h: 4, FirstTime24h: 4, Distinct1h: 3, Distinct24h: 3, Known: 3}},
			{3 * time.Minute, []string{"a@x", "d@x"}, Stats{Distinct: 2, Domains: 1, NewExternal: 0, External: 2, FirstTime1h: 4, FirstTime24h: 4, Distinct1h: 3, Distinct24h: 3, Known: 3}},
		}},
		{"own domain is not external without local domains", Options{}, []step{
			{0, []string{"a@Example.org", "b@x.com"}, Stats{New: 2, NewExternal: 1, Distinct: 2, Domains: 2, External: 2, FirstTime1h: 2, FirstTime24h: 2, Distinct1h: 2, Distinct24h: 2, Known: 2}},
		}},
		{"windows slide", Options{LocalDomains: []string{"corp.example"}}, []step{
			{0, []string{"a@x", "b@y", "c@corp.example"}, Stats{New: 3, Distinct: 3, Domains: 3, NewExternal: 2, External: 2, FirstTime1h: 3, FirstTime24h: 3, Distinct1h: 3, Distinct24h: 3, Known: 3}},
			{30 * time.Minute, []string{"d@x"}, Stats{New: 1, Distinct: 1, Domains: 1, NewExternal: 1, External: 1, FirstTime1h: 4, FirstTime24h: 4, Distinct1h: 4, Distinct24h: 4, Known: 4}},
			// an hour after the first message it has left the hour window
			{61 * time.Minute, []string{"a@x"}, Stats{Distinct: 1, Domains: 1, NewExternal: 0, External: 1, FirstTime1h: 1, FirstTime24h: 4, Distinct1h: 2, Distinct24h: 4, Known: 4}},
			{26 * time.Hour, []string{"e@x"}, Stats{New: 1, Distinct: 1, Domains: 1, NewExternal: 1, External: 1, FirstTime1h: 1, FirstTime24h: 1, Distinct1h: 1, Distinct24h: 1, Known: 5}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := New(tc.opts)
			for i, s := range tc.steps {
				// Every step observes the same account, first seen at step 0.
				s.want.Tracked = s.after - tc.steps[0].after
				if got := tr.Observe("u@example.org", s.rcpts, t0.Add(s.after)); got != s.want {
					t.Fatalf("step %d:\n got %+v\nwant %+v", i, got, s.want)
				}
			}
		})
	}
}

func TestEvictionOrder(t *testing.T) {
	tr := New(Options{MaxPerAccount: 3})
	for i, r := range []string{"a@x", "b@x", "c@x", "a@x", "d@x"} {
		tr.Observe("u", []string{r}, t0.Add(time.Duration(i)*time.Minute))
	}
	// b@ was least recently seen when d@ arrived: it alone is forgotten.
	for _, tc := range []struct {
		rcpt string
		new  int
	}{{"a@x", 0}, {"c@x", 0}, {"d@x", 0}} {
		if got := tr.Observe("u", []string{tc.rcpt}, t0.Add(time.Hour)); got.New != tc.new {
			t.Fatalf("%s: %+v", tc.rcpt, got)
		}
	}
	if got := tr.Observe("u", []string{"b@x"}, t0.Add(2*time.Hour)); got.New != 1 || got.Known != 3 {
		t.Fatalf("b@x: %+v", got)
	}
}

func TestPeekAndSweep(t *testing.T) {
	tr := New(Options{})
	if got := tr.Peek("nobody", t0); got != (Stats{}) {
		t.Fatalf("unknown account: %+v", got)
	}
	tr.Observe("u", []string{"a@x", "b@x"}, t0)
	tr.Observe("v", []string{"a@x"}, t0.Add(50*24*time.Hour))
	want := Stats{FirstTime1h: 2, FirstTime24h: 2, Distinct1h: 2, Distinct24h: 2, Known: 2, Tracked: time.Minute}
	if got := tr.Peek("u", t0.Add(time.Minute)); got != want {
		t.Fatalf("peek: %+v", got)
	}
	// Accounts are separate: a@x is new for v.
	if got := tr.Peek("v", t0.Add(50*24*time.Hour)); got.FirstTime1h != 1 || got.Known != 1 {
		t.Fatalf("peek v: %+v", got)
	}
	if n := tr.Sweep(t0.Add(2 * 24 * time.Hour)); n != 2 {
		t.Fatalf("sweep after 2 days kept %d accounts", n)
	}
	if n := tr.Sweep(t0.Add(91 * 24 * time.Hour)); n != 1 {
		t.Fatalf("sweep after 91 days kept %d accounts", n)
	}
	if got := tr.Peek("u", t0.Add(91*24*time.Hour)); got != (Stats{}) {
		t.Fatalf("swept account: %+v", got)
	}
}

func TestOutOfOrder(t *testing.T) {
	tr := New(Options{})
	tr.Observe("u", []string{"a@x"}, t0)
	got := tr.Observe("u", []string{"b@x", "a@x"}, t0.Add(-10*time.Minute))
	if got.New != 1 || got.Known != 2 || got.FirstTime1h != 2 {
		t.Fatalf("%+v", got)
	}
	if got := tr.Peek("u", t0); got.Distinct1h != 2 {
		t.Fatalf("%+v", got)
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	key := []byte("secret from a file")
	tr := New(Options{Key: key})
	for i := range 300 {
		tr.Observe(fmt.Sprintf("u%d", i%7), []string{fmt.Sprintf("r%d@x", i%41), fmt.Sprintf("r%d@y", i)}, t0.Add(time.Duration(i)*time.Minute))
	}
	snap := tr.Snapshot()
	if len(snap) != 7 {
		t.Fatalf("accounts: %d", len(snap))
	}
	d := New(Options{Key: key})
	if err := d.Restore(snap); err != nil {
		t.Fatal(err)
	}
	at := t0.Add(300 * time.Minute)
	for i := range 7 {
		name := fmt.Sprintf("u%d", i)
		if a, b := tr.Peek(name, at), d.Peek(name, at); a != b {
			t.Fatalf("%s: %+v != %+v", name, a, b)
		}
		// The restored table knows the same recipients.
		rs := []string{"r3@x", fmt.Sprintf("r%d@y", 290+i), "fresh@z"}
		if a, b := tr.Observe(name, rs, at), d.Observe(name, rs, at); a != b {
			t.Fatalf("%s after restore: %+v != %+v", name, a, b)
		}
	}
	// A smaller cap trims on restore, oldest first.
	small := New(Options{Key: key, MaxPerAccount: 5})
	if err := small.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if got := small.Peek("u0", at); got.Known != 5 {
		t.Fatalf("trimmed: %+v", got)
	}
	if err := New(Options{Key: []byte("other")}).Restore(snap); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("other key: %v", err)
	}
	if err := New(Options{}).Restore(map[string][]byte{"x": {9, 9}}); !errors.Is(err, errSnapshot) {
		t.Fatalf("bad snapshot: %v", err)
	}
}

func TestConcurrent(t *testing.T) {
	tr := New(Options{MaxPerAccount: 100})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				at := t0.Add(time.Duration(i) * time.Second)
				tr.Observe("shared", []string{fmt.Sprintf("r%d@x", i%150)}, at)
				tr.Observe(fmt.Sprintf("own%d", g), []string{"a@x"}, at)
				if i%100 == 0 {
					tr.Peek("shared", at)
					tr.Snapshot()
					tr.Sweep(at)
				}
			}
		})
	}
	wg.Wait()
	if got := tr.Peek("shared", t0.Add(1000*time.Second)); got.Known != 100 || got.Distinct1h != 100 {
		t.Fatalf("%+v", got)
	}
}

// TestMemory measures the heap cost of remembered recipients: 1,000
// accounts × 200 recipients.
func TestMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates")
	}
	const accounts, per = 1000, 200
	names := make([]string, accounts)
	rcpts := make([][]string, per)
	for i := range names {
		names[i] = fmt.Sprintf("user%d@example.org", i)
	}
	for i := range rcpts {
		rcpts[i] = []string{fmt.Sprintf("recipient%d@example.net", i)}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tr := New(Options{})
	for i, name := range names {
		for j, r := range rcpts {
			tr.Observe(name, r, t0.Add(time.Duration(i+j)*time.Second))
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per1 := float64(after.HeapAlloc-before.HeapAlloc) / (accounts * per)
	t.Logf("%d accounts × %d recipients: %.1f MiB, %.1f bytes per recipient, %.1f KiB per account",
		accounts, per, float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), per1, per1*per/1024)
	runtime.KeepAlive(tr)
	// Generous bound: the figure in doc.go is about a third of this.
	if per1 > 250 {
		t.Errorf("%.1f bytes per recipient", per1)
	}
}

// FuzzDecode: decoding arbitrary bytes never panics, and whatever decodes
// re-encodes to bytes that decode to the same account and re-encode
// identically.
func FuzzDecode(f *testing.F) {
	tr := New(Options{Key: []byte("k")})
	tr.Observe("u", []string{"a@x", "b@y"}, t0)
	tr.Observe("u", []string{"c@x", "a@x"}, t0.Add(time.Hour))
	for _, b := range tr.Snapshot() {
		f.Add(b)
	}
	f.Add(encode(7, newAccount()))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		id, a, err := decode(b)
		if err != nil {
			return
		}
		b2 := encode(id, a)
		id2, a2, err := decode(b2)
		if err != nil || id2 != id || !reflect.DeepEqual(a, a2) {
			t.Fatalf("round trip: %v %+v %+v", err, a, a2)
		}
		if b3 := encode(id2, a2); string(b3) != string(b2) {
			t.Fatalf("re-encoding differs: %x %x", b2, b3)
		}
	})
}

func BenchmarkObserve(b *testing.B) {
	tr := New(Options{LocalDomains: []string{"example.org"}})
	users := make([]string, 10000)
	for i := range users {
		users[i] = fmt.Sprintf("user%d@example.org", i)
	}
	rcpts := make([][]string, 64)
	for i := range rcpts {
		rcpts[i] = []string{fmt.Sprintf("a%d@example.net", i), fmt.Sprintf("b%d@example.org", i%7), "Boss@Example.org"}
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			tr.Observe(users[i%len(users)], rcpts[i%len(rcpts)], t0.Add(time.Duration(i)*time.Second))
			i++
		}
	})
}

func TestTracked(t *testing.T) {
	tr := New(Options{Key: []byte("k")})
	t0 := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	if st := tr.Observe("a@x.example", []string{"b@y.example"}, t0); st.Tracked != 0 {
		t.Fatalf("first message: Tracked = %v, want 0", st.Tracked)
	}
	st := tr.Observe("a@x.example", []string{"b@y.example"}, t0.Add(50*time.Hour))
	if st.Tracked != 50*time.Hour {
		t.Fatalf("Tracked = %v, want 50h", st.Tracked)
	}
	// The first-seen time survives a snapshot.
	tr2 := New(Options{Key: []byte("k")})
	if err := tr2.Restore(tr.Snapshot()); err != nil {
		t.Fatal(err)
	}
	if st := tr2.Peek("a@x.example", t0.Add(72*time.Hour)); st.Tracked != 72*time.Hour {
		t.Fatalf("after restore: Tracked = %v, want 72h", st.Tracked)
	}
}

func TestDirtyAndSince(t *testing.T) {
	tr := New(Options{Key: []byte("k"), Lookback: 24 * time.Hour})
	t0 := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	if !tr.Since().IsZero() {
		t.Fatal("empty tracker has a Since")
	}
	tr.Observe("a", []string{"x@y"}, t0)
	tr.Observe("b", []string{"x@y"}, t0.Add(time.Hour))
	if got := tr.Since(); !got.Equal(t0) {
		t.Fatalf("Since = %v, want %v", got, t0)
	}
	d := tr.Dirty()
	if len(d) != 2 || d["a"] == nil || d["b"] == nil {
		t.Fatalf("first Dirty: %d entries", len(d))
	}
	if d := tr.Dirty(); len(d) != 0 {
		t.Fatalf("second Dirty without changes: %d entries", len(d))
	}
	tr.Observe("b", []string{"z@y"}, t0.Add(2*time.Hour))
	if d := tr.Dirty(); len(d) != 1 || d["b"] == nil {
		t.Fatalf("after one change: %v", d)
	}
	// Restoring into a new tracker carries Since.
	tr2 := New(Options{Key: []byte("k"), Lookback: 24 * time.Hour})
	if err := tr2.Restore(tr.Snapshot()); err != nil {
		t.Fatal(err)
	}
	if got := tr2.Since(); !got.Equal(t0) {
		t.Fatalf("restored Since = %v, want %v", got, t0)
	}
	// A swept account is reported for deletion.
	tr.Sweep(t0.Add(30 * 24 * time.Hour))
	d = tr.Dirty()
	if v, ok := d["a"]; !ok || v != nil {
		t.Fatalf("swept account not reported as deleted: %v", d)
	}
}

// A background restore merges: recipients mailed since start stay known
// with their times, the restored ones are known again, first-time counts
// add up and the bound holds.
func TestRestoreMergesLiveRecipients(t *testing.T) {
	key := []byte("k")
	before := New(Options{Key: key})
	for i := range 20 {
		before.Observe("u@x", []string{fmt.Sprintf("old%d@y", i)}, t0.Add(time.Duration(i)*time.Minute))
	}
	snap := before.Snapshot()

	live := New(Options{Key: key, MaxPerAccount: 25})
	at := t0.Add(time.Hour)
	st := live.Observe("u@x", []string{"old3@y", "new1@y", "new2@y"}, at)
	if st.New != 3 {
		t.Fatalf("before the restore every recipient is new: %+v", st)
	}
	if err := live.Restore(snap); err != nil {
		t.Fatal(err)
	}
	p := live.Peek("u@x", at)
	if p.Known != 22 {
		t.Fatalf("known after merge = %d, want 22 (20 restored, 2 new)", p.Known)
	}
	if p.FirstTime24h != 23 {
		t.Fatalf("first-time over the day = %d, want 23 (20 restored + 3 live)", p.FirstTime24h)
	}
	if got := live.Observe("u@x", []string{"old7@y", "new2@y"}, at.Add(time.Minute)); got.New != 0 {
		t.Fatalf("restored and live recipients known: %+v", got)
	}
	// Over the bound the least recently mailed go first: old0–old4 after
	// five more.
	live.Observe("u@x", []string{"a@z", "b@z", "c@z", "d@z"}, at.Add(2*time.Minute))
	if got := live.Observe("u@x", []string{"old0@y"}, at.Add(3*time.Minute)); got.New != 1 {
		t.Fatalf("oldest recipient still known past the bound: %+v", got)
	}
	if got := live.Observe("u@x", []string{"old3@y"}, at.Add(4*time.Minute)); got.New != 0 {
		t.Fatalf("old3 was mailed live and must be recent: %+v", got)
	}
}
