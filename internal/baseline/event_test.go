package baseline

import (
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/engine"
	"github.com/mailbrake/mailbrake/internal/fingerprint"
)

// TestLearnedAcrossNodes: an account's mail split over two nodes, each
// applying the other's events, gives both the normal one node learns
// from all of it, and a burst absorbed on one is absorbed on the other.
func TestLearnedAcrossNodes(t *testing.T) {
	o := Options{Action: engine.ActionHold}
	one, a, b := New(o), New(o), New(o)
	a.Learned = func(ev []byte) {
		if err := b.ApplyLearned(ev); err != nil {
			t.Fatal(err)
		}
	}
	b.Learned = func(ev []byte) {
		if err := a.ApplyLearned(ev); err != nil {
			t.Fatal(err)
		}
	}
	for day := range 21 {
		for m := range 6 {
			at := t0.AddDate(0, 0, day).Add(time.Duration(m) * 50 * time.Minute)
			node := a
			if m%2 == 1 {
				node = b
			}
			send(node, at, 5, fingerprint.FamilyThunderbird)
			send(one, at, 5, fingerprint.FamilyThunderbird)
		}
	}
	at := t0.AddDate(0, 0, 21)
	want, _ := one.Normal("u@x", at)
	for i, d := range []*Detector{a, b} {
		if got, ok := d.Normal("u@x", at); !ok || got.HistoryDays != want.HistoryDays || got.DayRcpts != want.DayRcpts ||
			got.PeakHourRcpts != want.PeakHourRcpts || len(got.Families) != 1 {
			t.Errorf("node %d's normal %+v, one node's %+v", i, got, want)
		}
	}
	// A burst through a, absorbed by an admin there: the next day b lets
	// a burst of the same size go, as one node would.
	burst := at.Add(2 * time.Hour)
	if f := send(a, burst, 400, fingerprint.FamilyThunderbird); len(f) == 0 {
		t.Fatal("burst not flagged")
	}
	a.Absorb("u@x", burst)
	if f := send(b, burst.AddDate(0, 0, 1), 400, fingerprint.FamilyThunderbird); len(f) != 0 {
		t.Fatalf("after the absorb on a, b flags: %v", reasons(f))
	}
	for _, bad := range []string{"", "{}", `{"op":"msg","a":"u","at":0}`, `{"op":"x","a":"u","at":5}`, `{"op":"msg","a":"u","at":5,"n":-2}`} {
		if err := b.ApplyLearned([]byte(bad)); err == nil {
			t.Errorf("%q applied", bad)
		}
	}
}

// FuzzApplyLearned: any event from the stream is applied or refused,
// never a panic.
func FuzzApplyLearned(f *testing.F) {
	for _, s := range []string{`{"op":"msg","a":"u@x","at":1764579600,"n":5,"f":"thunderbird"}`, `{"op":"absorb","a":"u@x","at":1764579600}`, `{"op":"msg"}`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, ev []byte) {
		New(Options{}).ApplyLearned(ev)
	})
}
