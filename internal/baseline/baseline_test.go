package baseline

import (
	"context"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/engine"
	"github.com/mailbrake/mailbrake/internal/fingerprint"
)

var t0 = time.Date(2026, 10, 1, 9, 0, 0, 0, time.UTC)

func send(d *Detector, at time.Time, rcpts int, fam fingerprint.Family) []engine.Finding {
	return d.Outbound(context.Background(), &engine.Submission{Account: "u@x", Time: at, RecipientCount: rcpts, Client: fingerprint.Result{Family: fam}})
}

func reasons(fs []engine.Finding) []engine.Reason {
	var out []engine.Reason
	for _, f := range fs {
		out = append(out, f.Reason)
	}
	return out
}

func TestLearnedNormal(t *testing.T) {
	d := New(Options{Action: engine.ActionHold, Score: 5, NewClientScore: 2})
	// Three weeks of a normal sender: 6 messages a day × 5 recipients,
	// from Thunderbird.
	for day := 0; day < 21; day++ {
		for m := 0; m < 6; m++ {
			if f := send(d, t0.AddDate(0, 0, day).Add(time.Duration(m)*time.Hour), 5, fingerprint.FamilyThunderbird); len(f) > 0 {
				t.Fatalf("day %d msg %d: normal sending flagged: %v", day, m, reasons(f))
			}
		}
	}
	nm, ok := d.Normal("u@x", t0.AddDate(0, 0, 21))
	if !ok || nm.HistoryDays != 21 || nm.DayRcpts != 30 || nm.PeakHourRcpts != 5 {
		t.Fatalf("normal: %+v", nm)
	}
	day := t0.AddDate(0, 0, 21)
	// Twice the usual is fine; over the floor (100/h) it is flagged.
	if f := send(d, day, 60, fingerprint.FamilyThunderbird); len(f) != 0 {
		t.Fatalf("60 recipients flagged: %v", reasons(f))
	}
	f := send(d, day.Add(time.Minute), 60, fingerprint.FamilyThunderbird)
	if len(f) != 1 || f[0].Reason != ReasonAboveBaselineHour || f[0].Action != engine.ActionHold || f[0].Score != 5 {
		t.Fatalf("120 in an hour: %+v", f)
	}
	// A new client family with many recipients.
	f = send(d, day.Add(3*time.Hour), 20, fingerprint.FamilyZimbraHTML)
	if len(f) != 1 || f[0].Reason != ReasonNewClientFamily {
		t.Fatalf("new family: %+v", f)
	}
	// A new family with one recipient is not a finding (people get phones).
	if f := send(d, day.Add(4*time.Hour), 1, fingerprint.FamilyAppleMail); len(f) != 0 {
		t.Fatalf("new family, 1 recipient: %v", reasons(f))
	}
}

func TestDayAboveBaseline(t *testing.T) {
	d := New(Options{Action: engine.ActionHold})
	for day := 0; day < 14; day++ {
		send(d, t0.AddDate(0, 0, day), 20, fingerprint.FamilyNone)
	}
	// A slow drip: 10 recipients every 10 minutes — never 100 in an hour,
	// but over max(300, 4 × 20) in the day.
	var got []engine.Reason
	sent := 0
	for i := 0; i < 144 && len(got) == 0; i++ {
		got = reasons(send(d, t0.AddDate(0, 0, 14).Add(time.Duration(i)*10*time.Minute), 10, fingerprint.FamilyNone))
		sent += 10
	}
	if len(got) == 0 || got[0] != ReasonAboveBaselineDay || sent != 310 {
		t.Fatalf("drip: %v after %d recipients", got, sent)
	}
}

func TestNewAccountUsesFloors(t *testing.T) {
	d := New(Options{Action: engine.ActionHold})
	if f := send(d, t0, 100, fingerprint.FamilyNone); len(f) != 0 {
		t.Fatalf("%v", reasons(f))
	}
	if f := send(d, t0, 1, fingerprint.FamilyNone); len(f) != 1 || f[0].Reason != ReasonAboveBaselineHour {
		t.Fatalf("%v", reasons(f))
	}
}

func BenchmarkOutbound(b *testing.B) {
	d := New(Options{Action: engine.ActionHold})
	sub := &engine.Submission{Account: "u@x", Time: t0, RecipientCount: 3, Client: fingerprint.Result{Family: fingerprint.FamilyThunderbird}}
	b.ReportAllocs()
	for b.Loop() {
		d.Outbound(context.Background(), sub)
	}
}

func TestSnapshotKeepsNormal(t *testing.T) {
	d := New(Options{Action: engine.ActionHold})
	for day := 0; day < 10; day++ {
		send(d, t0.AddDate(0, 0, day), 7, fingerprint.FamilyThunderbird)
	}
	snap := d.Dirty()
	if len(snap) != 1 || len(d.Dirty()) != 0 {
		t.Fatalf("dirty: %d", len(snap))
	}
	e := New(Options{Action: engine.ActionHold})
	if err := e.Restore(snap); err != nil {
		t.Fatal(err)
	}
	at := t0.AddDate(0, 0, 10)
	a, _ := d.Normal("u@x", at)
	b, _ := e.Normal("u@x", at)
	if a.HistoryDays != b.HistoryDays || a.DayRcpts != b.DayRcpts || a.PeakHourRcpts != b.PeakHourRcpts || len(b.Families) != 1 {
		t.Fatalf("%+v != %+v", a, b)
	}
	if err := e.Restore(map[string][]byte{"x": {1, 2, 3}}); err == nil {
		t.Fatal("bad snapshot accepted")
	}
}

func FuzzDecode(f *testing.F) {
	d := New(Options{})
	send(d, t0, 3, fingerprint.FamilyOutlook)
	for _, b := range d.Dirty() {
		f.Add(b)
	}
	f.Add([]byte{snapVersion})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := decode(b, 28)
		if err != nil {
			return
		}
		a2, err := decode(encode(a), 28)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if string(encode(a2)) != string(encode(a)) {
			t.Fatal("encoding not stable")
		}
	})
}

// TestAbsorbReviewedBurst: once an admin judged a held burst legitimate,
// the same burst is part of the account's normal (a newsletter released
// once is not held again for the same size), and it survives a restart.
func TestAbsorbReviewedBurst(t *testing.T) {
	d := New(Options{Action: engine.ActionHold, Score: 5, Days: 28})
	for day := 0; day < 10; day++ {
		send(d, t0.AddDate(0, 0, day), 5, fingerprint.FamilyThunderbird)
	}
	burst := t0.AddDate(0, 0, 10)
	if f := send(d, burst, 250, fingerprint.FamilyThunderbird); len(f) == 0 {
		t.Fatal("a 250-recipient burst was not flagged")
	}
	d.Absorb("u@x", burst.Add(time.Minute))
	d.Absorb("nobody@x", burst) // unknown account: nothing
	back := New(Options{Action: engine.ActionHold, Score: 5, Days: 28})
	if err := back.Restore(d.Dirty()); err != nil {
		t.Fatal(err)
	}
	for _, det := range []*Detector{d, back} {
		if f := send(det, t0.AddDate(0, 0, 17), 250, fingerprint.FamilyThunderbird); len(f) != 0 {
			t.Errorf("the reviewed burst's size a week later: %v", reasons(f))
		}
		if f := send(det, t0.AddDate(0, 0, 18), 600, fingerprint.FamilyThunderbird); len(f) == 0 {
			t.Error("a burst far above the reviewed one was not flagged")
		}
	}
	// After the history's length the absorbed burst is forgotten.
	if f := send(d, t0.AddDate(0, 0, 40), 250, fingerprint.FamilyThunderbird); len(f) == 0 {
		t.Error("the absorbed burst lasts past the history")
	}
}

// A background restore merges: the history restored, today's mail sent
// before the snapshot loaded added to the restored part of today.
func TestRestoreMergesLiveDay(t *testing.T) {
	d := New(Options{Action: engine.ActionHold})
	for day := 0; day < 10; day++ {
		send(d, t0.AddDate(0, 0, day), 7, fingerprint.FamilyThunderbird)
	}
	today := t0.AddDate(0, 0, 10)
	send(d, today, 5, fingerprint.FamilyThunderbird)
	snap := d.Dirty()

	e := New(Options{Action: engine.ActionHold})
	send(e, today.Add(10*time.Minute), 3, fingerprint.FamilyOutlook) // same hour, before the restore
	if err := e.Restore(snap); err != nil {
		t.Fatal(err)
	}
	nm, ok := e.Normal("u@x", today.Add(20*time.Minute))
	if !ok {
		t.Fatal("account gone")
	}
	if nm.HistoryDays != 10 || nm.DayRcpts != 7 || nm.TodayRcpts != 8 || nm.HourRcpts != 8 || len(nm.Families) != 2 {
		t.Fatalf("merged normal %+v", nm)
	}
	// The sparse history stays bounded by the configured days.
	sh := e.shard("u@x")
	if n := len(sh.m["u@x"].days); n != 11 {
		t.Fatalf("%d days kept, want 11", n)
	}
	for day := 11; day < 60; day++ {
		send(e, t0.AddDate(0, 0, day), 1, fingerprint.FamilyOutlook)
	}
	if n := len(sh.m["u@x"].days); n != 28 {
		t.Fatalf("%d days kept after 60 days, want the history's 28", n)
	}
}
