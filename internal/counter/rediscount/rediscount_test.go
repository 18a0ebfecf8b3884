package rediscount

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailbrake/mailbrake/internal/counter"
	"github.com/mailbrake/mailbrake/internal/counter/countertest"
	"github.com/mailbrake/mailbrake/internal/redistest"
	"github.com/mailbrake/mailbrake/internal/store"
)

// TestConformance: the shared counters pass the suite the in-memory ones
// pass, against a real Redis; a second node is a second client with its
// own connections.
func TestConformance(t *testing.T) {
	srv := redistest.New(t)
	countertest.Run(t, func(t *testing.T) (store.Counters, func() store.Counters) {
		prefix := "mb-test:" + t.Name() + ":" // a fresh, empty backend per test
		client := func() store.Counters {
			c := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: srv.Password})
			t.Cleanup(func() { c.Close() })
			rc := New(c, prefix)
			t.Cleanup(rc.Close)
			return rc
		}
		return client(), client
	})
}

// TestConformanceOnCluster: the same suite against a Redis Cluster of
// three masters: every script's keys carry the account in braces, so each
// runs on its account's master (a CROSSSLOT error otherwise).
func TestConformanceOnCluster(t *testing.T) {
	rc := redistest.NewCluster(t, 3)
	countertest.Run(t, func(t *testing.T) (store.Counters, func() store.Counters) {
		prefix := "mb-test:" + t.Name() + ":"
		client := func() store.Counters {
			c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: rc.Addrs()[:1], Password: rc.Password})
			t.Cleanup(func() { c.Close() })
			r := New(c, prefix)
			t.Cleanup(r.Close)
			return r
		}
		return client(), client
	})
}

// BenchmarkCharge: one charge is one round trip (EVALSHA) to a Redis on
// this machine; parallel charges of 1,000 accounts from as many clients
// as GOMAXPROCS × the -cpu setting.
func BenchmarkCharge(b *testing.B) {
	srv := redistest.New(b)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: srv.Password, PoolSize: 16})
	b.Cleanup(func() { c.Close() })
	cs := New(c, "mb-bench:")
	now := time.Now()
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if _, err := cs.Charge(context.Background(), fmt.Sprintf("user%d@example.edu", i%1000), "", now, 1, 3); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestFailoverConformance: wrapped for outages, the shared counters still
// pass the suite while Redis answers.
func TestFailoverConformance(t *testing.T) {
	srv := redistest.New(t)
	countertest.Run(t, func(t *testing.T) (store.Counters, func() store.Counters) {
		prefix := "mb-test-failover:" + t.Name() + ":"
		client := func() store.Counters {
			c := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: srv.Password})
			t.Cleanup(func() { c.Close() })
			return &counter.Failover{Shared: New(c, prefix)}
		}
		return client(), client
	})
}

// TestFailoverOutage: Redis stops mid-stream; charges keep answering from
// this process (no error, so no message is temp-failed for it), the node
// says it is degraded, and when Redis is back (empty: it kept nothing) the
// outage's charges are added to it, so the shared count misses nothing.
func TestFailoverOutage(t *testing.T) {
	srv := redistest.New(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: srv.Password, DialTimeout: 200 * time.Millisecond,
		ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	shared := New(c, "mb-outage:")
	var mu sync.Mutex
	var events []bool
	f := &counter.Failover{Shared: shared, RetryEvery: 50 * time.Millisecond, Degraded: func(d bool) { mu.Lock(); events = append(events, d); mu.Unlock() }}
	ctx := context.Background()
	now := time.Now()
	for range 3 {
		if _, err := f.Charge(ctx, "u@x", "", now, 1, 10); err != nil {
			t.Fatal(err)
		}
	}
	srv.Stop()
	var last store.Totals
	for i := range 5 {
		tot, err := f.Charge(ctx, "u@x", fmt.Sprintf("q%d", i), now, 1, 20)
		if err != nil {
			t.Fatalf("charge during the outage: %v", err)
		}
		last = tot
	}
	if !f.IsDegraded() || last.Messages1h != 5 || last.Recipients1h != 100 {
		t.Fatalf("during the outage: degraded %v, totals %+v (this node's since it began)", f.IsDegraded(), last)
	}
	srv.Start()
	time.Sleep(60 * time.Millisecond) // past RetryEvery: the next charge tries Redis
	tot, err := f.Charge(ctx, "u@x", "", now, 1, 1)
	if err != nil || f.IsDegraded() {
		t.Fatalf("after Redis returned: %v, degraded %v", err, f.IsDegraded())
	}
	f.WaitReplay()
	got, err := shared.Peek(ctx, "u@x", now)
	if err != nil || got.Messages1h != 6 || got.Recipients1h != 101 {
		t.Fatalf("shared counts after the outage: %+v %v (first answer %+v); want the 5 of the outage and the 1 since", got, err, tot)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 2 || !events[0] || events[1] {
		t.Fatalf("degraded events %v, want [true false]", events)
	}
}

// TestMatchesMemory: over a random stream of charges and peeks in time
// order — bursts, gaps of minutes, hours and more than a day — the Redis
// windows, kept incrementally, give exactly the totals of the in-memory
// counters at every step.
func TestMatchesMemory(t *testing.T) {
	srv := redistest.New(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: srv.Password})
	t.Cleanup(func() { c.Close() })
	rc, mem := New(c, "mb-match:"), counter.NewMemory()
	rng := rand.New(rand.NewPCG(1, 2))
	ctx := context.Background()
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	accounts := []string{"a@x", "b@x", "c@x"}
	for i := range 4000 {
		switch p := rng.IntN(100); {
		case p < 60:
			at = at.Add(time.Duration(rng.IntN(40)) * time.Second)
		case p < 90:
			at = at.Add(time.Duration(rng.IntN(20)) * time.Minute)
		case p < 98:
			at = at.Add(time.Duration(rng.IntN(6)) * time.Hour)
		default:
			at = at.Add(time.Duration(20+rng.IntN(30)) * time.Hour)
		}
		acct := accounts[rng.IntN(len(accounts))]
		var got, want store.Totals
		var err error
		if rng.IntN(4) == 0 {
			got, err = rc.Peek(ctx, acct, at)
			want, _ = mem.Peek(ctx, acct, at)
		} else {
			m, r := int64(1+rng.IntN(3)), int64(rng.IntN(80))
			got, err = rc.Charge(ctx, acct, "", at, m, r)
			want, _ = mem.Charge(ctx, acct, "", at, m, r)
		}
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("step %d, %s at %s: redis %+v, memory %+v", i, acct, at, got, want)
		}
	}
	// The hash holds no more than the buckets of one window each.
	for _, a := range accounts {
		if n := c.HLen(ctx, "mb-match:{"+a+"}:w").Val(); n > 2*(60+288)+8 {
			t.Errorf("%s's hash has %d fields", a, n)
		}
	}
}

// TestFarBehindCharge: a charge stamped more than a window before the
// newest one charged (a clock far behind, a replay) is outside the window
// and is not added to it; within the day it still counts for the day.
func TestFarBehindCharge(t *testing.T) {
	srv := redistest.New(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: srv.Password})
	t.Cleanup(func() { c.Close() })
	rc := New(c, "mb-behind:")
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	rc.Charge(ctx, "u", "", now, 1, 1)
	got, _ := rc.Charge(ctx, "u", "", now.Add(-2*time.Hour), 1, 1)
	if got.Messages1h != 1 || got.Messages24h != 2 {
		t.Fatalf("%+v", got)
	}
	if got, _ := rc.Peek(ctx, "u", now.Add(61*time.Minute)); got.Messages1h != 0 || got.Messages24h != 2 {
		t.Fatalf("an hour on: %+v", got)
	}
}

// TestPeekChargeAndRefund: PeekCharge returns the totals Peek would have
// and charges; Refund takes the charge back out of its bucket, and never
// more than the bucket holds (a refund with nothing charged changes
// nothing); the Failover the daemon uses charges only while Redis
// answers.
func TestPeekChargeAndRefund(t *testing.T) {
	srv := redistest.New(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: srv.Password, MaxRetries: -1, DialTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond})
	t.Cleanup(func() { c.Close() })
	rc := New(c, "mb-pc:")
	t.Cleanup(rc.Close)
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	rc.Charge(ctx, "u", "", now.Add(-30*time.Minute), 2, 10)
	peek, _ := rc.Peek(ctx, "u", now)
	before, charged, err := rc.PeekCharge(ctx, "u", now, 1, 3)
	if err != nil || !charged || before != peek {
		t.Fatalf("PeekCharge %+v %v %v, Peek %+v", before, charged, err, peek)
	}
	if got, _ := rc.Peek(ctx, "u", now); got.Messages1h != 3 || got.Recipients1h != 13 || got.Recipients24h != 13 {
		t.Fatalf("after the charge: %+v", got)
	}
	done := make(chan error, 1)
	rc.Refund(ctx, "u", now, 1, 3, func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, _ := rc.Peek(ctx, "u", now); got != peek {
		t.Fatalf("after the refund %+v, before the charge %+v", got, peek)
	}
	rc.Refund(ctx, "u", now, 5, 50, func(err error) { done <- err })
	<-done
	rc.Refund(ctx, "nobody", now, 1, 1, func(err error) { done <- err })
	<-done
	if got, _ := rc.Peek(ctx, "u", now); got != peek {
		t.Fatalf("a refund of nothing charged changed %+v to %+v", peek, got)
	}
	if got, _ := rc.Peek(ctx, "nobody", now); got != (store.Totals{}) {
		t.Fatalf("a refund made totals of nothing: %+v", got)
	}

	f := &counter.Failover{Shared: rc}
	if _, charged, err := f.PeekCharge(ctx, "u", now, 1, 1); !charged || err != nil {
		t.Fatalf("Failover with Redis up: charged %v, %v", charged, err)
	}
	srv.Stop()
	got, charged, err := f.PeekCharge(ctx, "u", now, 1, 1)
	if charged || err != nil || got != (store.Totals{}) {
		t.Fatalf("Failover with Redis down: %+v charged %v, %v (want this node's empty totals, not charged)", got, charged, err)
	}
}

// TestMessageKeysPerNode: a message key is a queue ID or instance, unique
// within one MTA only. Two nodes charging one account under the same key
// charge two messages; one node charging it again (the message's other
// protocol path) charges one.
func TestMessageKeysPerNode(t *testing.T) {
	srv := redistest.New(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: srv.Password})
	t.Cleanup(func() { c.Close() })
	a, a2, b := NewForNode(c, "mb-nodes:", "mta-a"), NewForNode(c, "mb-nodes:", "mta-a"), NewForNode(c, "mb-nodes:", "mta-b")
	ctx := context.Background()
	now := time.Now()
	for _, cs := range []*Counters{a, a2, b} {
		if _, err := cs.Charge(ctx, "u@x", "q:3F2A1B", now, 1, 12); err != nil {
			t.Fatal(err)
		}
	}
	got, err := a.Peek(ctx, "u@x", now)
	if err != nil || got.Messages1h != 2 || got.Recipients1h != 24 {
		t.Fatalf("totals %+v %v, want two messages of 12 recipients (one per node)", got, err)
	}
}
