// Package statebus shares account states between the nodes of a cluster
// through Redis, so that an account restricted on one node is restricted
// on every node before its next message.
//
// Every change is written to one Redis hash (account → state record) and
// published on one channel, in one script, so a node that listens sees
// every change and a node that was not listening finds the latest state
// of every account in the hash. A record carries the time of the change;
// the later change wins, on Redis and on every node, whatever order the
// records arrive in.
//
// A change that cannot be written while Redis does not answer is kept and
// written when Redis answers again (unless a later change of the same
// account is already there). After each (re)subscription a node reads the
// whole hash, so what it missed meanwhile is applied then.
//
// The package knows nothing of what a state means: the caller applies
// each record (ops.Service.ApplySharedState).
package statebus

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailbrake/mailbrake/internal/store"
)

// Change is one account's state as a node set it.
type Change struct {
	Account store.Account `json:"a"`
	Node    string        `json:"n"` // the node that made the change
}

// publish writes ARGV[2] (a Change in JSON) as ACCOUNT ARGV[1]'s record
// unless the record there is later (ARGV[3], microseconds, is compared to
// the one stored beside it), and publishes it. It returns 1 when written.
var publish = redis.NewScript(`
local at = tonumber(ARGV[3])
local cur = redis.call('HGET', KEYS[2], ARGV[1])
if cur and tonumber(cur) > at then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('PUBLISH', KEYS[3], ARGV[2])
return 1
`)

// Bus is one node's end of the shared states.
type Bus struct {
	client                  *redis.Client
	records, times, channel string
	node                    string
	log                     *slog.Logger

	mu      sync.Mutex
	pending map[string]store.Account // changes Redis has not taken yet
	wake    chan struct{}
}

// New returns the bus of node on client; its keys start with prefix.
func New(client *redis.Client, prefix, node string, log *slog.Logger) *Bus {
	return &Bus{client: client, records: prefix + "states", times: prefix + "states:at", channel: prefix + "states",
		node: node, log: log, pending: map[string]store.Account{}, wake: make(chan struct{}, 1)}
}

// Publish shares a state change made on this node. It does not wait for
// Redis longer than the client's timeout; a change Redis did not take is
// kept and written by Run when Redis answers.
func (b *Bus) Publish(ctx context.Context, a store.Account) {
	if err := b.write(ctx, a); err != nil {
		b.mu.Lock()
		if p, ok := b.pending[a.Name]; !ok || !p.StateAt.After(a.StateAt) {
			b.pending[a.Name] = a
		}
		b.mu.Unlock()
		b.log.Warn("cluster: sharing an account state failed; kept until Redis answers", "account", a.Name, "state", a.State, "err", err)
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
}

func (b *Bus) write(ctx context.Context, a store.Account) error {
	rec, err := json.Marshal(Change{Account: a, Node: b.node})
	if err != nil {
		return err
	}
	at := strconv.FormatInt(a.StateAt.UnixMicro(), 10)
	return publish.Run(ctx, b.client, []string{b.records, b.times, b.channel}, a.Name, rec, at).Err()
}

// flush writes the pending changes; it returns the first error.
func (b *Bus) flush(ctx context.Context) error {
	b.mu.Lock()
	todo := make([]store.Account, 0, len(b.pending))
	for _, a := range b.pending {
		todo = append(todo, a)
	}
	b.mu.Unlock()
	for _, a := range todo {
		if err := b.write(ctx, a); err != nil {
			return err
		}
		b.mu.Lock()
		if p := b.pending[a.Name]; p.StateAt.Equal(a.StateAt) {
			delete(b.pending, a.Name)
		}
		b.mu.Unlock()
	}
	return nil
}

// Pending returns how many changes wait for Redis.
func (b *Bus) Pending() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.pending)
}

// Load reads every account's latest state from Redis: what a node that
// cannot read its records store at start (PostgreSQL down) decides with
// until it can.
func (b *Bus) Load(ctx context.Context) ([]Change, error) {
	all, err := b.client.HGetAll(ctx, b.records).Result()
	if err != nil {
		return nil, err
	}
	out := make([]Change, 0, len(all))
	for _, rec := range all {
		if c, ok := b.decode(rec); ok {
			out = append(out, c)
		}
	}
	return out, nil
}

// Run applies the other nodes' changes until ctx ends: after each
// (re)subscription it writes what is pending, then applies every record
// of the hash (the caller ignores what it already has), then each change
// as it is published. apply is called from one goroutine at a time.
func (b *Bus) Run(ctx context.Context, apply func(context.Context, Change)) {
	retry := time.Second
	for ctx.Err() == nil {
		up, err := b.session(ctx, apply)
		if ctx.Err() != nil {
			return
		}
		if up {
			retry = time.Second // it was working: try again soon
		}
		b.log.Warn("cluster: account states not received; retrying", "in", retry, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(retry):
		case <-b.wake:
		}
		retry = min(retry*2, 30*time.Second)
	}
}

// session is one subscription: it returns when the connection fails.
func (b *Bus) session(ctx context.Context, apply func(context.Context, Change)) (up bool, err error) {
	sub := b.client.Subscribe(ctx, b.channel)
	defer sub.Close()
	// A read in progress does not see ctx end; closing the subscription
	// ends it.
	defer context.AfterFunc(ctx, func() { sub.Close() })()
	// Receive waits for the subscription's confirmation, so nothing
	// published after the hash is read below is missed.
	if _, err = sub.Receive(ctx); err != nil {
		return up, err
	}
	if err := b.flush(ctx); err != nil {
		return up, err
	}
	all, err := b.client.HGetAll(ctx, b.records).Result()
	if err != nil {
		return up, err
	}
	for _, rec := range all {
		if c, ok := b.decode(rec); ok {
			apply(ctx, c)
		}
	}
	b.log.Info("cluster: account states shared", "node", b.node, "known", len(all))
	up = true
	// Messages are read here rather than through PubSub.Channel, which
	// reconnects by itself: a new connection must read the hash again.
	for {
		msg, err := sub.ReceiveTimeout(ctx, receiveEvery)
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			// Quiet: check the connection, and write what a timeout
			// left pending while it stayed up.
			if err := sub.Ping(ctx); err != nil {
				return up, err
			}
			if b.Pending() > 0 {
				if err := b.flush(ctx); err != nil {
					return up, err
				}
			}
			continue
		case err != nil:
			return up, err
		}
		if m, ok := msg.(*redis.Message); ok {
			if c, ok := b.decode(m.Payload); ok && c.Node != b.node {
				apply(ctx, c)
			}
		}
	}
}

// receiveEvery bounds a quiet wait for a message; the connection is
// checked and pending changes written then.
const receiveEvery = 5 * time.Second

func (b *Bus) decode(rec string) (Change, bool) {
	var c Change
	if err := json.Unmarshal([]byte(rec), &c); err != nil || c.Account.Name == "" || !c.Account.State.Valid() {
		b.log.Warn("cluster: an account state record in Redis is not readable; ignored")
		return Change{}, false
	}
	return c, true
}
