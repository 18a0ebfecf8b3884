package redisnovelty

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailbrake/mailbrake/internal/novelty"
	"github.com/mailbrake/mailbrake/internal/redistest"
)

func client(t testing.TB, srv *redistest.Instance) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: srv.Password})
	t.Cleanup(func() { c.Close() })
	return c
}

// TestMatchesTracker: over a random stream of messages and peeks — a few
// accounts, a pool of recipients at home and outside, gaps from seconds to
// more than the lookback, now and then a message stamped minutes in the
// past, tables at their cap — the Redis memory gives exactly the stats of
// the in-memory novelty.Tracker at every step.
func TestMatchesTracker(t *testing.T) {
	srv := redistest.New(t)
	c := client(t, srv)
	for _, local := range [][]string{nil, {"example.edu"}} {
		t.Run(fmt.Sprint(local), func(t *testing.T) {
			o := novelty.Options{Lookback: 3 * time.Hour, MaxPerAccount: 12, LocalDomains: local, Key: []byte("k")}
			mem, hasher := novelty.New(o), novelty.New(o)
			rm := New(c, "mb-match:"+fmt.Sprint(len(local))+":", Options{Hasher: hasher})
			rng := rand.New(rand.NewPCG(3, 4))
			ctx := context.Background()
			at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
			accounts := []string{"a@example.edu", "b@example.edu", "c@other.org"}
			pool := make([]string, 40)
			for i := range pool {
				dom := []string{"example.edu", "other.org", "gmail.com", "Example.EDU"}[i%4]
				pool[i] = fmt.Sprintf("r%d@%s", i, dom)
			}
			pool = append(pool, "postmaster", "<R1@Other.org>")
			for i := range 3000 {
				switch p := rng.IntN(100); {
				case p < 50:
					at = at.Add(time.Duration(rng.IntN(3)) * time.Second)
				case p < 80:
					at = at.Add(time.Duration(rng.IntN(20)) * time.Minute)
				case p < 95:
					at = at.Add(time.Duration(rng.IntN(3)) * time.Hour)
				case p < 97:
					at = at.Add(-time.Duration(rng.IntN(10)) * time.Minute) // a clock behind
				default:
					at = at.Add(time.Duration(4+rng.IntN(30)) * time.Hour)
				}
				acct := accounts[rng.IntN(len(accounts))]
				var got, want novelty.Stats
				var err error
				if rng.IntN(5) == 0 {
					got, err = rm.Peek(ctx, acct, at)
					want = mem.Peek(acct, at)
				} else {
					rs := make([]string, rng.IntN(8))
					for j := range rs {
						rs[j] = pool[rng.IntN(len(pool))]
					}
					got, err = rm.Observe(ctx, acct, rs, at)
					want = mem.Observe(acct, rs, at)
				}
				if err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Fatalf("step %d, %s at %s:\nredis  %+v\nmemory %+v", i, acct, at, got, want)
				}
			}
		})
	}
}

// TestTwoNodes: two nodes recording one account at the same moment give
// the totals of one: of 8 × 50 distinct recipients sent from two clients
// at once, each is first-time exactly once.
func TestTwoNodes(t *testing.T) {
	srv := redistest.New(t)
	o := novelty.Options{Key: []byte("shared")}
	a := New(client(t, srv), "mb-two:", Options{Hasher: novelty.New(o)})
	b := New(client(t, srv), "mb-two:", Options{Hasher: novelty.New(o)})
	ctx := context.Background()
	now := time.Now()
	var wg sync.WaitGroup
	news := make([]int, 16)
	for i := range 16 {
		m := a
		if i%2 == 1 {
			m = b
		}
		wg.Go(func() {
			rs := make([]string, 50)
			for j := range rs {
				rs[j] = fmt.Sprintf("p%d@example.org", (i/2)*50+j) // each batch of 50 sent by both nodes
			}
			st, err := m.Observe(ctx, "u@example.edu", rs, now)
			if err != nil {
				t.Error(err)
			}
			news[i] = st.New
		})
	}
	wg.Wait()
	total := 0
	for _, n := range news {
		total += n
	}
	if total != 400 {
		t.Fatalf("first-time recipients %d over both nodes, want 400 (each once): %v", total, news)
	}
	st, err := b.Peek(ctx, "u@example.edu", now)
	if err != nil || st.FirstTime1h != 400 || st.Known != 400 || st.Distinct1h != 400 {
		t.Fatalf("peek %+v %v", st, err)
	}
}

// TestJoin: the first node records the key's identifier and the start of
// learning; a node with another novelty key is refused, one with the same
// key learns the cluster's start.
func TestJoin(t *testing.T) {
	srv := redistest.New(t)
	c := client(t, srv)
	ctx := context.Background()
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	a := New(c, "mb-join:", Options{Hasher: novelty.New(novelty.Options{Key: []byte("one")})})
	if err := a.Join(ctx, start); err != nil {
		t.Fatal(err)
	}
	same := New(c, "mb-join:", Options{Hasher: novelty.New(novelty.Options{Key: []byte("one")})})
	if err := same.Join(ctx, start.Add(time.Hour)); err != nil || !same.Since().Equal(start) {
		t.Fatalf("same key: %v, since %s", err, same.Since())
	}
	other := New(c, "mb-join:", Options{Hasher: novelty.New(novelty.Options{Key: []byte("two")})})
	if err := other.Join(ctx, start); !errors.Is(err, ErrOtherKey) {
		t.Fatalf("another key: %v", err)
	}
}

// TestIdleExpiry: the account's keys live for the idle time chosen
// (engine.forget_idle_after) when it is shorter than the lookback.
func TestIdleExpiry(t *testing.T) {
	srv := redistest.New(t)
	c := client(t, srv)
	ctx := context.Background()
	m := New(c, "mb-idle:", Options{Hasher: novelty.New(novelty.Options{Key: []byte("k")}), Idle: 48 * time.Hour})
	if _, err := m.Observe(ctx, "u@x", []string{"a@y"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, k := range m.keys("u@x")[:3] {
		if ttl := c.TTL(ctx, k).Val(); ttl <= 47*time.Hour || ttl > 48*time.Hour {
			t.Errorf("%s expires in %s, want 48h", k, ttl)
		}
	}
}

// BenchmarkObserve: one message of three recipients is one round trip to
// a Redis on this machine. It reports Redis's own CPU time per script
// call (INFO commandstats), the figure a cluster's Redis is sized by.
func BenchmarkObserve(b *testing.B) {
	srv := redistest.New(b)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: srv.Password, PoolSize: 16})
	b.Cleanup(func() { c.Close() })
	m := New(c, "mb-bench:", Options{Hasher: novelty.New(novelty.Options{Key: []byte("k")})})
	now := time.Now()
	var mu sync.Mutex
	i := 0
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu.Lock()
			i++
			n := i
			mu.Unlock()
			rs := []string{fmt.Sprintf("r%d@a.org", n%500), fmt.Sprintf("r%d@b.org", n%700), "team@example.edu"}
			if _, err := m.Observe(context.Background(), fmt.Sprintf("user%d@example.edu", n%1000), rs, now); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	info := c.Info(context.Background(), "commandstats").Val()
	for l := range strings.Lines(info) {
		if !strings.HasPrefix(l, "cmdstat_evalsha:") {
			continue
		}
		for f := range strings.SplitSeq(strings.TrimSpace(strings.TrimPrefix(l, "cmdstat_evalsha:")), ",") {
			if v, ok := strings.CutPrefix(f, "usec_per_call="); ok {
				if us, err := strconv.ParseFloat(v, 64); err == nil {
					b.ReportMetric(us, "redis-µs/call")
				}
			}
		}
	}
}

// TestFailoverOutage: while Redis is stopped a message gets no novelty
// (not every recipient first-time) and is kept; when Redis answers again
// the kept messages are recorded, so their recipients are known.
func TestFailoverOutage(t *testing.T) {
	srv := redistest.New(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: srv.Password, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: time.Second})
	t.Cleanup(func() { c.Close() })
	var mu sync.Mutex
	var events []bool
	f := &Failover{M: New(c, "mb-out:", Options{Hasher: novelty.New(novelty.Options{Key: []byte("k")})}), Log: slogDiscard(),
		RetryEvery: 10 * time.Millisecond, Degraded: func(on bool) { mu.Lock(); events = append(events, on); mu.Unlock() }}
	ctx := context.Background()
	now := time.Now()
	if _, ok, err := f.Observe(ctx, "u@x", []string{"a@y"}, now); !ok || err != nil {
		t.Fatal(ok, err)
	}
	srv.Stop()
	for i := range 3 {
		st, ok, err := f.Observe(ctx, "u@x", []string{fmt.Sprintf("b%d@y", i), "a@y"}, now)
		if ok || err != nil || st != (novelty.Stats{}) {
			t.Fatalf("during the outage: %+v %v %v", st, ok, err)
		}
	}
	if n := f.Pending(); n != 3 {
		t.Fatalf("%d messages kept, want 3", n)
	}
	srv.Start()
	deadline := time.Now().Add(10 * time.Second)
	var st novelty.Stats
	for {
		var ok bool
		var err error
		time.Sleep(20 * time.Millisecond)
		st, ok, err = f.Observe(ctx, "u@x", []string{"c@y"}, now)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Redis never answered again")
		}
	}
	f.Close()
	if f.Pending() != 0 {
		t.Fatalf("%d still kept", f.Pending())
	}
	st, ok := f.Peek(ctx, "u@x", now)
	// a, b0..b2 and c: each first-time once.
	if !ok || st.Known != 5 || st.FirstTime1h != 5 {
		t.Fatalf("after the outage: %+v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 2 || !events[0] || events[1] {
		t.Fatalf("degraded events %v, want [true false]", events)
	}
}

func slogDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// BenchmarkFootprint reports the Redis memory of one account's keys
// (MEMORY USAGE) after it mailed n distinct recipients, 10 a message, in
// a day: what sizing a cluster's Redis starts from. Redis's own
// encodings decide it (zset-max-listpack-entries, 128 by default).
func BenchmarkFootprint(b *testing.B) {
	srv := redistest.New(b)
	c := client(b, srv)
	ctx := context.Background()
	for _, n := range []int{10, 100, 128, 500, 5000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			m := New(c, fmt.Sprintf("mb-size%d:", n), Options{Hasher: novelty.New(novelty.Options{Key: []byte("k")})})
			at := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
			for b.Loop() {
				for i := 0; i < n; i += 10 {
					rs := make([]string, min(10, n-i))
					for j := range rs {
						rs[j] = fmt.Sprintf("r%d@dest%d.example", i+j, (i+j)%40)
					}
					if _, err := m.Observe(ctx, "u@example.edu", rs, at.Add(time.Duration(i)*time.Minute)); err != nil {
						b.Fatal(err)
					}
				}
			}
			total := int64(0)
			for _, k := range m.keys("u@example.edu") {
				total += c.MemoryUsage(ctx, k).Val()
			}
			b.ReportMetric(float64(total), "bytes/account")
		})
	}
}

// TestOnCluster: on a Redis Cluster of three masters two nodes join
// (the key's identifier and the learning start, on other slots than the
// accounts') and share one account's recipients exactly: each script's
// keys carry the account in braces.
func TestOnCluster(t *testing.T) {
	rc := redistest.NewCluster(t, 3)
	cc := func() *redis.ClusterClient {
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: rc.Addrs()[:1], Password: rc.Password})
		t.Cleanup(func() { c.Close() })
		return c
	}
	o := novelty.Options{Key: []byte("shared")}
	a := New(cc(), "mb-cl:", Options{Hasher: novelty.New(o)})
	b := New(cc(), "mb-cl:", Options{Hasher: novelty.New(o)})
	ctx := context.Background()
	now := time.Now()
	for _, m := range []*Memory{a, b} {
		if err := m.Join(ctx, now); err != nil {
			t.Fatalf("Join: %v", err)
		}
	}
	for i, m := range []*Memory{a, b, a} {
		rs := []string{fmt.Sprintf("x%d@example.org", i), "same@example.org"}
		if _, err := m.Observe(ctx, fmt.Sprintf("u%d@example.edu", i%2), rs, now); err != nil {
			t.Fatalf("Observe: %v", err)
		}
	}
	st, err := b.Peek(ctx, "u0@example.edu", now)
	if err != nil || st.Known != 3 || st.FirstTime1h != 3 {
		t.Fatalf("u0 on the cluster: %+v %v (want 3 known: x0, x2 and same)", st, err)
	}
}
