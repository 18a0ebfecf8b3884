package statebus

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailbrake/mailbrake/internal/redistest"
	"github.com/mailbrake/mailbrake/internal/store"
)

// node is one Bus with what it applied, latest per account.
type node struct {
	*Bus
	mu   sync.Mutex
	seen map[string]Change
}

func newNode(t *testing.T, srv *redistest.Instance, name string) *node {
	t.Helper()
	return newKeyedNode(t, srv, name, nil)
}

func newKeyedNode(t *testing.T, srv *redistest.Instance, name string, key []byte) *node {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: srv.Password, MaxRetries: -1,
		DialTimeout: 250 * time.Millisecond, ReadTimeout: 250 * time.Millisecond, WriteTimeout: 250 * time.Millisecond})
	t.Cleanup(func() { c.Close() })
	n := &node{Bus: New(c, "t:", name, key, slog.New(slog.DiscardHandler)), seen: map[string]Change{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Run(ctx, func(_ context.Context, ch Change) {
			n.mu.Lock()
			if cur, ok := n.seen[ch.Account.Name]; !ok || !cur.Account.StateAt.After(ch.Account.StateAt) {
				n.seen[ch.Account.Name] = ch
			}
			n.mu.Unlock()
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return when its context ended")
		}
	})
	return n
}

// wait waits until n has applied account in state, from node from.
func (n *node) wait(t *testing.T, account string, state store.AccountState, from string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		n.mu.Lock()
		c, ok := n.seen[account]
		n.mu.Unlock()
		if ok && c.Account.State == state && c.Node == from {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("node %s did not apply %s = %s from %s; has %+v", n.node, account, state, from, n.seen[account])
}

func acct(name string, st store.AccountState, at time.Time) store.Account {
	return store.Account{Name: name, State: st, StateAt: at.UTC().Truncate(time.Microsecond), StateBy: "cli:admin", Reason: "test"}
}

// A change made on one node is applied on the others, with who made it;
// a node's own changes are not applied back to it from the channel.
func TestChangesReachOtherNodes(t *testing.T) {
	srv := redistest.New(t)
	a, b := newNode(t, srv, "a"), newNode(t, srv, "b")
	now := time.Now()
	a.Publish(t.Context(), acct("eve@x.example", store.AccountRestricted, now))
	b.wait(t, "eve@x.example", store.AccountRestricted, "a")
	b.Publish(t.Context(), acct("eve@x.example", store.AccountNormal, now.Add(time.Second)))
	a.wait(t, "eve@x.example", store.AccountNormal, "b")
	if a.Pending() != 0 || b.Pending() != 0 {
		t.Fatalf("pending %d %d", a.Pending(), b.Pending())
	}
}

// The later change wins on Redis whatever order they are written in: an
// older change written late is neither stored nor published.
func TestLaterChangeWins(t *testing.T) {
	srv := redistest.New(t)
	a, b := newNode(t, srv, "a"), newNode(t, srv, "b")
	now := time.Now()
	a.Publish(t.Context(), acct("eve@x.example", store.AccountLocked, now))
	b.wait(t, "eve@x.example", store.AccountLocked, "a")
	a.Publish(t.Context(), acct("eve@x.example", store.AccountWatch, now.Add(-time.Minute)))
	// A node that joins now finds the later change in the hash.
	c := newNode(t, srv, "c")
	c.wait(t, "eve@x.example", store.AccountLocked, "a")
	a.Publish(t.Context(), acct("eve@x.example", store.AccountRestricted, now.Add(time.Minute)))
	b.wait(t, "eve@x.example", store.AccountRestricted, "a")
	c.wait(t, "eve@x.example", store.AccountRestricted, "a")
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.seen["eve@x.example"].Account.StateBy != "cli:admin" {
		t.Fatalf("record lost who made the change: %+v", b.seen["eve@x.example"])
	}
}

// A change made while Redis is down is kept, and written when Redis is
// back (it lost its data when it restarted); the other node applies it.
func TestChangeDuringOutage(t *testing.T) {
	srv := redistest.New(t)
	a, b := newNode(t, srv, "a"), newNode(t, srv, "b")
	srv.Stop()
	a.Publish(t.Context(), acct("frank@x.example", store.AccountRestricted, time.Now()))
	if a.Pending() != 1 {
		t.Fatalf("pending %d, want 1", a.Pending())
	}
	srv.Start()
	b.wait(t, "frank@x.example", store.AccountRestricted, "a")
	deadline := time.Now().Add(10 * time.Second)
	for a.Pending() != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if a.Pending() != 0 {
		t.Fatalf("still pending after Redis is back: %d", a.Pending())
	}
}

// An unreadable record in the hash is skipped; the others are applied.
func TestUnreadableRecord(t *testing.T) {
	srv := redistest.New(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: srv.Password})
	defer c.Close()
	if err := c.HSet(t.Context(), "t:states", "bad@x.example", "{not json", "odd@x.example", `{"a":{"account":"odd@x.example","state":"frozen"},"n":"z"}`).Err(); err != nil {
		t.Fatal(err)
	}
	a := newNode(t, srv, "a")
	a.Publish(t.Context(), acct("eve@x.example", store.AccountWatch, time.Now()))
	b := newNode(t, srv, "b")
	b.wait(t, "eve@x.example", store.AccountWatch, "a")
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.seen) != 1 {
		t.Fatalf("applied %+v", b.seen)
	}
}

// With cluster.key_file, records are signed: the nodes that hold the key
// apply each other's changes; a record written to Redis by someone without
// it — unsigned, or signed with another key — restricts nobody and is
// counted; a node without a key still reads signed records.
func TestSignedStates(t *testing.T) {
	srv := redistest.New(t)
	key := []byte("0123456789abcdef0123456789abcdef")
	a, b := newKeyedNode(t, srv, "a", key), newKeyedNode(t, srv, "b", key)
	other := newKeyedNode(t, srv, "intruder", []byte("another key, 32 bytes at least!!"))
	plain := newNode(t, srv, "plain")
	now := time.Now()
	a.Publish(t.Context(), acct("eve@x.example", store.AccountRestricted, now))
	b.wait(t, "eve@x.example", store.AccountRestricted, "a")
	plain.wait(t, "eve@x.example", store.AccountRestricted, "a")

	// Someone with Redis access but not the key: a forged record in the
	// hash and on the channel, and one signed with another key.
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: srv.Password})
	defer c.Close()
	forged := `{"a":{"account":"bob@x.example","state":"locked","state_at":"` + now.UTC().Format(time.RFC3339Nano) + `"},"n":"a"}`
	if err := c.HSet(t.Context(), "t:states", "bob@x.example", forged).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(t.Context(), "t:states", forged).Err(); err != nil {
		t.Fatal(err)
	}
	other.Publish(t.Context(), acct("carol@x.example", store.AccountLocked, now))
	// The node without a key takes both (the records are well formed);
	// the keyed nodes take neither.
	plain.wait(t, "bob@x.example", store.AccountLocked, "a")
	plain.wait(t, "carol@x.example", store.AccountLocked, "intruder")
	// A later real change goes through, and after it the node has seen
	// (and counted) the forgeries.
	a.Publish(t.Context(), acct("dave@x.example", store.AccountRestricted, now))
	b.wait(t, "dave@x.example", store.AccountRestricted, "a")
	loaded, err := b.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []*node{a, b} {
		n.mu.Lock()
		_, bob := n.seen["bob@x.example"]
		_, carol := n.seen["carol@x.example"]
		n.mu.Unlock()
		if bob || carol {
			t.Errorf("node %s applied a forged state (bob %v, carol %v)", n.node, bob, carol)
		}
	}
	for _, ch := range loaded {
		if ch.Account.Name != "eve@x.example" && ch.Account.Name != "dave@x.example" {
			t.Errorf("Load returned a forged state: %+v", ch)
		}
	}
	if b.Rejected() < 3 {
		t.Errorf("node b counted %d rejected records; want the forged, the other key's and Load's", b.Rejected())
	}
}
