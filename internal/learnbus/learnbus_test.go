package learnbus

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailbrake/mailbrake/internal/redistest"
)

type collector struct {
	mu  sync.Mutex
	got []string
}

func (c *collector) handle(data []byte) error {
	if string(data) == "bad" {
		return fmt.Errorf("refused")
	}
	c.mu.Lock()
	c.got = append(c.got, string(data))
	c.mu.Unlock()
	return nil
}

func (c *collector) wait(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		got := slices.Clone(c.got)
		c.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("applied %d events, want %d: %v", len(got), n, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func start(t *testing.T, srv *redistest.Instance, node, from string) (*Bus, *collector, func()) {
	return startKeyed(t, srv, node, from, nil)
}

func startKeyed(t *testing.T, srv *redistest.Instance, node, from string, key []byte) (*Bus, *collector, func()) {
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: srv.Password, MaxRetries: -1, DialTimeout: 500 * time.Millisecond, ReadTimeout: 500 * time.Millisecond})
	b := New(c, "mb-learn:", node, slog.New(slog.DiscardHandler), Options{Key: key})
	col := &collector{}
	b.Handle("x", col.handle)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx, from); close(done) }()
	stop := func() { cancel(); <-done; c.Close() }
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			stop()
		}
	})
	return b, col, stop
}

// TestShared: what one node publishes the other applies, in order, and
// never its own; an event its handler refuses is counted, not fatal.
func TestShared(t *testing.T) {
	srv := redistest.New(t)
	a, colA, _ := start(t, srv, "a", "")
	b, colB, _ := start(t, srv, "b", "")
	time.Sleep(100 * time.Millisecond) // both readers past the stream's end
	for i := range 5 {
		a.Publish("x", fmt.Appendf(nil, "a%d", i))
	}
	a.Publish("x", []byte("bad"))
	a.Publish("unknown-kind", []byte("?"))
	b.Publish("x", []byte("b0"))
	if got := colB.wait(t, 5); !slices.Equal(got, []string{"a0", "a1", "a2", "a3", "a4"}) {
		t.Fatalf("b applied %v", got)
	}
	if got := colA.wait(t, 1); !slices.Equal(got, []string{"b0"}) {
		t.Fatalf("a applied %v", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if applied, refused := b.Applied(); applied == 5 && refused == 1 {
			break
		}
		if time.Now().After(deadline) {
			applied, refused := b.Applied()
			t.Fatalf("applied %d refused %d", applied, refused)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCatchUp: a node stopped and started again from its saved position
// applies what was published meanwhile, once.
func TestCatchUp(t *testing.T) {
	srv := redistest.New(t)
	a, _, _ := start(t, srv, "a", "")
	b, colB, stopB := start(t, srv, "b", "")
	time.Sleep(100 * time.Millisecond)
	a.Publish("x", []byte("before"))
	colB.wait(t, 1)
	stopB()
	pos := b.Position()
	a.Publish("x", []byte("while-down-1"))
	a.Publish("x", []byte("while-down-2"))
	waitPending(t, a)
	_, colB2, _ := start(t, srv, "b", pos)
	if got := colB2.wait(t, 2); !slices.Equal(got, []string{"while-down-1", "while-down-2"}) {
		t.Fatalf("after restart b applied %v", got)
	}
}

// TestOutage: events published while Redis is stopped are kept and
// shared when it answers again.
func TestOutage(t *testing.T) {
	srv := redistest.New(t)
	a, _, _ := start(t, srv, "a", "")
	_, colB, _ := start(t, srv, "b", "")
	time.Sleep(100 * time.Millisecond)
	srv.Stop()
	for i := range 3 {
		a.Publish("x", fmt.Appendf(nil, "o%d", i))
	}
	time.Sleep(300 * time.Millisecond)
	if a.Pending() != 3 {
		t.Fatalf("%d pending during the outage, want 3", a.Pending())
	}
	srv.Start()
	if got := colB.wait(t, 3); !slices.Equal(got, []string{"o0", "o1", "o2"}) {
		t.Fatalf("after the outage b applied %v", got)
	}
}

func waitPending(t *testing.T, b *Bus) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for b.Pending() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d events not written", b.Pending())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestIDLess orders stream IDs numerically.
func TestIDLess(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{{"1-0", "2-0", true}, {"9-0", "10-0", true}, {"10-0", "9-0", false}, {"5-2", "5-10", true}, {"5-1", "5-1", false}} {
		if got := idLess(c.a, c.b); got != c.want {
			t.Errorf("idLess(%s, %s) = %v", c.a, c.b, got)
		}
	}
}

// BenchmarkPublish: events of a typical size (a campaign message event,
// ~150 bytes) published by one node and read by another; it reports
// Redis's CPU per XADD and the stream's memory per event.
func BenchmarkPublish(b *testing.B) {
	srv := redistest.New(b)
	ev := []byte(`{"op":"msg","a":"someone.long@campus.example.edu","t":1234567890123456789,"l":987654321987654321,"s":[1,2,3,4,5,6,7,8],"n":3,"x":2,"at":1764579600}`)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: srv.Password})
	b.Cleanup(func() { c.Close() })
	pub := New(c, "mb-bench:", "a", slog.New(slog.DiscardHandler), Options{})
	sub := New(c, "mb-bench:", "b", slog.New(slog.DiscardHandler), Options{})
	var got atomic.Int64
	sub.Handle("x", func([]byte) error { got.Add(1); return nil })
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { pub.Run(ctx, "") })
	wg.Go(func() { sub.Run(ctx, "0-0") })
	b.ResetTimer()
	for b.Loop() {
		pub.Publish("x", ev)
	}
	for got.Load() < int64(b.N) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	cancel()
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	for l := range strings.Lines(c.Info(context.Background(), "commandstats").Val()) {
		if rest, ok := strings.CutPrefix(l, "cmdstat_xadd:"); ok {
			for f := range strings.SplitSeq(strings.TrimSpace(rest), ",") {
				if v, ok := strings.CutPrefix(f, "usec_per_call="); ok {
					us, _ := strconv.ParseFloat(v, 64)
					b.ReportMetric(us, "redis-µs/xadd")
				}
			}
		}
	}
	if n := c.XLen(context.Background(), "mb-bench:learn").Val(); n > 0 {
		b.ReportMetric(float64(c.MemoryUsage(context.Background(), "mb-bench:learn", 0).Val())/float64(n), "bytes/event")
	}
}

// TestSignedAndOnce: with a key, the nodes that hold it apply each
// other's events; an event added to the stream by someone without the key
// (unsigned, or signed with another), and a node's real event copied back
// into the stream, are not applied and are counted. The numbers applied
// survive a restart (HighWater, SetHighWater), so a copy made later is
// refused then too.
func TestSignedAndOnce(t *testing.T) {
	srv := redistest.New(t)
	key := []byte("0123456789abcdef0123456789abcdef")
	a, _, _ := startKeyed(t, srv, "a", "", key)
	b, colB, stopB := startKeyed(t, srv, "b", "", key)
	_, colOther, _ := startKeyed(t, srv, "intruder", "", []byte("another key, 32 bytes at least!!"))
	time.Sleep(100 * time.Millisecond) // the readers past the stream's end
	a.Publish("x", []byte("a0"))
	colB.wait(t, 1)

	c := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: srv.Password})
	defer c.Close()
	all, err := c.XRange(t.Context(), "mb-learn:learn", "-", "+").Result()
	if err != nil || len(all) != 1 {
		t.Fatalf("stream %v, %v", all, err)
	}
	real := all[0].Values
	add := func(vals map[string]any) {
		if err := c.XAdd(t.Context(), &redis.XAddArgs{Stream: "mb-learn:learn", Values: vals}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	add(map[string]any{"n": "a", "k": "x", "q": "99999999999999999", "d": "forged, unsigned"})
	add(map[string]any{"n": "a", "k": "x", "q": "99999999999999998", "d": "forged, bad signature", "s": strings.Repeat("00", 32)})
	add(real) // a copy of a0, signed as it was
	a.Publish("x", []byte("a1"))
	if got := colB.wait(t, 2); !slices.Equal(got, []string{"a0", "a1"}) {
		t.Fatalf("node b applied %q", got)
	}
	if n := b.Rejected(); n != 3 {
		t.Errorf("node b rejected %d events, want 3", n)
	}
	colOther.mu.Lock()
	other := len(colOther.got)
	colOther.mu.Unlock()
	if other != 0 {
		t.Errorf("a node with another key applied %d events", other)
	}

	// Restarted from its saved position and numbers, b refuses a copy
	// of a1 made while it was down.
	pos, hw := b.Position(), b.HighWater()
	stopB()
	all, _ = c.XRange(t.Context(), "mb-learn:learn", "-", "+").Result()
	add(all[len(all)-1].Values) // a1 again
	a.Publish("x", []byte("a2"))
	b2 := New(redis.NewClient(&redis.Options{Addr: srv.Addr, Password: srv.Password}), "mb-learn:", "b", slog.New(slog.DiscardHandler), Options{Key: key})
	b2.SetHighWater(hw)
	col2 := &collector{}
	b2.Handle("x", col2.handle)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b2.Run(ctx, pos); close(done) }()
	defer func() { cancel(); <-done }()
	if got := col2.wait(t, 1); !slices.Equal(got, []string{"a2"}) {
		t.Fatalf("restarted node b applied %q", got)
	}
	if b2.Rejected() != 1 {
		t.Errorf("restarted node b rejected %d, want the copy of a1", b2.Rejected())
	}
}
