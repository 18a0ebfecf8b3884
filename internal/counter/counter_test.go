package counter

import (
	"context"
	"encoding/binary"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/store"
)

var ctx = context.Background()

func TestSlidingWindows(t *testing.T) {
	c := NewMemory()
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	for i := 0; i < 10; i++ {
		if _, err := c.Charge(ctx, "u@x", "", t0.Add(time.Duration(i)*time.Minute), 1, 5); err != nil {
			t.Fatal(err)
		}
	}
	want := store.Totals{Messages1h: 10, Recipients1h: 50, Messages24h: 10, Recipients24h: 50}
	if got, _ := c.Peek(ctx, "u@x", t0.Add(9*time.Minute)); got != want {
		t.Fatalf("after 10 charges: %+v", got)
	}
	// 65 minutes after the first charge, the charges of minutes 0–5 are 60
	// or more minutes old and have left the hour (the window is (now-60m, now]).
	got, _ := c.Peek(ctx, "u@x", t0.Add(65*time.Minute))
	if got.Messages1h != 4 || got.Recipients1h != 20 || got.Messages24h != 10 {
		t.Fatalf("after 65m: %+v", got)
	}
	// A day later everything is gone.
	got, _ = c.Peek(ctx, "u@x", t0.Add(24*time.Hour+10*time.Minute))
	if got != (store.Totals{}) {
		t.Fatalf("after a day: %+v", got)
	}
	if n := c.Sweep(t0.Add(25 * time.Hour)); n != 0 {
		// dirty accounts are kept until their snapshot is taken
		c.Dirty()
		if n := c.Sweep(t0.Add(25 * time.Hour)); n != 0 {
			t.Fatalf("sweep kept %d accounts", n)
		}
	}
	if got, _ := c.Peek(ctx, "other", t0); got != (store.Totals{}) {
		t.Fatalf("unknown account: %+v", got)
	}
}

func TestMessageKeyChargedOnce(t *testing.T) {
	c := NewMemory()
	now := time.Unix(1_800_000_000, 0)
	a, _ := c.Charge(ctx, "u", "4ABC", now, 1, 60)
	b, _ := c.Charge(ctx, "u", "4ABC", now.Add(time.Second), 1, 60)
	if a != b || a.Messages1h != 1 || a.Recipients1h != 60 {
		t.Fatalf("same key charged twice: %+v %+v", a, b)
	}
	// the same queue id for another account is another message
	if o, _ := c.Charge(ctx, "v", "4ABC", now, 1, 1); o.Messages1h != 1 {
		t.Fatalf("other account: %+v", o)
	}
	// after the key TTL the key may be reused by Postfix
	if d, _ := c.Charge(ctx, "u", "4ABC", now.Add(2*keyTTL), 1, 1); d.Messages24h != 2 {
		t.Fatalf("reused key: %+v", d)
	}
}

// TestMessageKeyChargedUpTo: a message reported recipient by recipient
// (policy RCPT) and then whole (end of message, milter) is counted at its
// largest report, once.
func TestMessageKeyChargedUpTo(t *testing.T) {
	c := NewMemory()
	now := time.Unix(1_800_000_000, 0)
	for n := int64(1); n <= 3; n++ {
		got, _ := c.Charge(ctx, "u", "i:7", now, 1, n)
		if got.Messages1h != 1 || got.Recipients1h != n {
			t.Fatalf("after RCPT %d: %+v", n, got)
		}
	}
	// end of message reports 5 recipients (2 more than seen at RCPT)
	if got, _ := c.Charge(ctx, "u", "i:7", now, 1, 5); got.Messages1h != 1 || got.Recipients1h != 5 {
		t.Fatalf("end of message: %+v", got)
	}
	// a smaller later report (the milter saw fewer) takes nothing back
	if got, _ := c.Charge(ctx, "u", "i:7", now, 1, 4); got.Messages1h != 1 || got.Recipients1h != 5 {
		t.Fatalf("smaller report: %+v", got)
	}
	// scores use the same contract: the largest total of one message
	if got, _ := c.Charge(ctx, "u", "q:9", now, 5, 0); got.Messages1h != 6 {
		t.Fatalf("score 5: %+v", got)
	}
	if got, _ := c.Charge(ctx, "u", "q:9", now, 15, 0); got.Messages1h != 16 {
		t.Fatalf("score raised to 15: %+v", got)
	}
}

func TestOutOfOrderCharges(t *testing.T) {
	c := NewMemory()
	now := time.Unix(1_800_000_000, 0)
	c.Charge(ctx, "u", "", now, 1, 1)
	c.Charge(ctx, "u", "", now.Add(-10*time.Minute), 1, 1)
	if got, _ := c.Peek(ctx, "u", now); got.Messages1h != 2 || got.Messages24h != 2 {
		t.Fatalf("%+v", got)
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	c := NewMemory()
	now := time.Unix(1_800_000_000, 0)
	for i := 0; i < 300; i++ {
		c.Charge(ctx, fmt.Sprintf("u%d", i%7), "", now.Add(time.Duration(i)*time.Minute), 1, int64(i))
	}
	snap := c.Dirty()
	if len(snap) != 7 {
		t.Fatalf("dirty accounts: %d", len(snap))
	}
	if again := c.Dirty(); len(again) != 0 {
		t.Fatalf("still dirty: %d", len(again))
	}
	d := NewMemory()
	at := now.Add(300 * time.Minute)
	// Restored at the time of the data (Restore uses the clock: these
	// times are ahead of it).
	if err := d.RestoreAt(snap, at); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 7; i++ {
		a, _ := c.Peek(ctx, fmt.Sprintf("u%d", i), at)
		b, _ := d.Peek(ctx, fmt.Sprintf("u%d", i), at)
		if a != b {
			t.Fatalf("u%d: %+v != %+v", i, a, b)
		}
	}
	if err := d.Restore(map[string][]byte{"x": {9, 9}}); err == nil {
		t.Fatal("bad snapshot accepted")
	}
}

func TestConcurrent(t *testing.T) {
	c := NewMemory()
	now := time.Unix(1_800_000_000, 0)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				c.Charge(ctx, "shared", "", now, 1, 2)
			}
		}()
	}
	wg.Wait()
	if got, _ := c.Peek(ctx, "shared", now); got.Messages1h != 8000 || got.Recipients24h != 16000 {
		t.Fatalf("%+v", got)
	}
}

// FuzzDecode: decoding arbitrary bytes never panics, and whatever decodes
// re-encodes to the same bytes.
func FuzzDecode(f *testing.F) {
	a := &account{hour: []bucket{{100, 1, 2}, {101, 3, 4}}, day: []bucket{{10, 4, 6}}}
	f.Add(encode(a))
	f.Add([]byte{snapVersion, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := decode(b)
		if err != nil {
			return
		}
		b2 := encode(a)
		a2, err := decode(b2)
		if err != nil || !reflect.DeepEqual(a, a2) {
			t.Fatalf("round trip: %v %+v %+v", err, a, a2)
		}
	})
}

func BenchmarkCharge(b *testing.B) {
	c := NewMemory()
	now := time.Unix(1_800_000_000, 0)
	users := make([]string, 1000)
	for i := range users {
		users[i] = fmt.Sprintf("user%d@example.org", i)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			c.Charge(ctx, users[i%len(users)], "", now.Add(time.Duration(i)*time.Second), 1, 3)
			i++
		}
	})
}

func TestSeries(t *testing.T) {
	c := NewMemory()
	t0 := time.Date(2026, 1, 1, 10, 3, 0, 0, time.UTC)
	ctx := context.Background()
	c.Charge(ctx, "a", "q1", t0, 1, 5)
	c.Charge(ctx, "a", "q2", t0.Add(time.Minute), 1, 2)
	c.Charge(ctx, "a", "q4", t0.Add(4*time.Minute), 1, 4) // 10:07: the next five minutes
	c.Charge(ctx, "a", "q3", t0.Add(3*time.Hour), 1, 1)
	got := c.Series("a", t0.Add(3*time.Hour))
	if len(got) != 3 || !got[0].Time.Equal(time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)) || got[0].Messages != 2 || got[0].Recipients != 7 ||
		!got[1].Time.Equal(time.Date(2026, 1, 1, 10, 5, 0, 0, time.UTC)) || got[1].Recipients != 4 || got[2].Recipients != 1 {
		t.Fatalf("series at five-minute resolution: %+v", got)
	}
	if got := c.Series("a", t0.Add(25*time.Hour)); len(got) != 1 {
		t.Fatalf("a day later only the last bucket is in the window: %+v", got)
	}
	if c.Series("nobody", t0) != nil {
		t.Fatal("series of an unknown account")
	}
}

// TestRestoreRepairsFutureTimes: counts a clock that was a day ahead
// stamped are moved to the time of the restore: they count once and age
// out within the window, instead of counting until time catches up
// (issue 13: messages_1h read 47 after 6 h at 6/h).
func TestRestoreRepairsFutureTimes(t *testing.T) {
	ctx := context.Background()
	ahead := NewMemory()
	t0 := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	for i := range 40 {
		ahead.Charge(ctx, "u@x", fmt.Sprintf("m%d", i), t0.Add(24*time.Hour+time.Duration(i)*time.Minute), 1, 1)
	}
	m := NewMemory()
	if err := m.RestoreAt(ahead.Dirty(), t0); err != nil {
		t.Fatal(err)
	}
	if tot, _ := m.Peek(ctx, "u@x", t0); tot.Messages1h != 40 {
		t.Errorf("right after the restore: %+v", tot)
	}
	if tot, _ := m.Peek(ctx, "u@x", t0.Add(2*time.Hour)); tot.Messages1h != 0 || tot.Messages24h != 40 {
		t.Errorf("two hours on: %+v", tot)
	}
	if tot, _ := m.Peek(ctx, "u@x", t0.Add(25*time.Hour)); tot.Messages24h != 0 {
		t.Errorf("a day on: %+v", tot)
	}
}

// The daemon restores snapshots in the background while it decides: an
// account charged before its snapshot is loaded keeps those charges and
// adds the restored ones, bucket by bucket.
func TestRestoreMergesLiveCharges(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	before := NewMemory()
	for i := range 10 {
		before.Charge(ctx, "u@x", "", now.Add(time.Duration(i-10)*time.Minute), 1, 5)
	}
	before.Charge(ctx, "v@x", "", now.Add(-2*time.Hour), 1, 1)
	snap := before.Dirty()

	live := NewMemory()
	live.Charge(ctx, "u@x", "", now.Add(-time.Minute), 1, 7) // same minute as a restored bucket
	live.Charge(ctx, "u@x", "", now, 2, 2)
	if err := live.RestoreAt(snap, now); err != nil {
		t.Fatal(err)
	}
	got, _ := live.Peek(ctx, "u@x", now)
	want := store.Totals{Messages1h: 13, Recipients1h: 59, Messages24h: 13, Recipients24h: 59}
	if got != want {
		t.Fatalf("merged totals %+v, want %+v", got, want)
	}
	if got, _ := live.Peek(ctx, "v@x", now); got.Messages24h != 1 || got.Messages1h != 0 {
		t.Fatalf("restored-only account: %+v", got)
	}
	// The merged account is saved again.
	if d := live.Dirty(); d["u@x"] == nil {
		t.Fatal("merged account not dirty")
	}
}

// TestDirtyParts: the parts together are exactly what Dirty returns, and
// taking them marks the accounts clean as Dirty does.
func TestDirtyParts(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	a, b := NewMemory(), NewMemory()
	for i := range 500 {
		acct := fmt.Sprintf("u%d@x", i)
		a.Charge(ctx, acct, "", now, 1, 2)
		b.Charge(ctx, acct, "", now, 1, 2)
	}
	want := a.Dirty()
	got := map[string][]byte{}
	for i := range b.DirtyParts() {
		for k, v := range b.DirtyPart(i) {
			if _, dup := got[k]; dup {
				t.Fatalf("%s in two parts", k)
			}
			got[k] = v
		}
	}
	if len(got) != len(want) {
		t.Fatalf("parts hold %d accounts, Dirty %d", len(got), len(want))
	}
	for k, v := range want {
		if string(got[k]) != string(v) {
			t.Fatalf("%s differs", k)
		}
	}
	if d := b.Dirty(); len(d) != 0 {
		t.Fatalf("still dirty after the parts: %d", len(d))
	}
}

// TestDecodeVersion1: a snapshot written before day buckets were five
// minutes (version 1, ten-minute day slots) restores with the same bucket
// start times and counts, so an upgrade keeps every window.
func TestDecodeVersion1(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 10, 20, 0, 0, time.UTC) // a ten-minute boundary
	minute, tenMin := t0.Unix()/60, t0.Unix()/600
	// version 1, hour list: one bucket; day list: two ten-minute buckets.
	v1 := []byte{1}
	v1 = binary.AppendUvarint(v1, 1)
	v1 = binary.AppendVarint(v1, minute)
	v1 = binary.AppendUvarint(v1, 3)
	v1 = binary.AppendUvarint(v1, 30)
	v1 = binary.AppendUvarint(v1, 2)
	for i, n := range []uint64{5, 3} {
		v1 = binary.AppendVarint(v1, tenMin-int64(1-i))
		v1 = binary.AppendUvarint(v1, n)
		v1 = binary.AppendUvarint(v1, 10*n)
	}
	c := NewMemory()
	if err := c.RestoreAt(map[string][]byte{"u@x": v1}, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	got := c.Series("u@x", t0.Add(time.Minute))
	if len(got) != 2 || !got[0].Time.Equal(t0.Add(-10*time.Minute)) || got[0].Messages != 5 || !got[1].Time.Equal(t0) || got[1].Recipients != 30 {
		t.Fatalf("version 1 day buckets: %+v", got)
	}
	if h, err := c.Peek(ctx, "u@x", t0.Add(time.Minute)); err != nil || h.Messages1h != 3 || h.Messages24h != 8 {
		t.Fatalf("windows after a version 1 restore: %+v %v", h, err)
	}
}
