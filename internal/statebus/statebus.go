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
// With a key (cluster.key_file, the same on every node), each record is
// signed (HMAC-SHA256) and a record without a valid signature is ignored
// and counted: whoever can write to the cluster's Redis without the key
// cannot restrict or release an account. A signed record replayed later
// changes nothing, since the later change of an account wins.
//
// The package knows nothing of what a state means: the caller applies
// each record (ops.Service.ApplySharedState).
package statebus

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
// the one stored beside it), and publishes it on channel ARGV[4] (not a
// key: a Redis Cluster delivers a message to every node's subscribers).
// It returns 1 when written.
var publish = redis.NewScript(`
local at = tonumber(ARGV[3])
local cur = redis.call('HGET', KEYS[2], ARGV[1])
if cur and tonumber(cur) > at then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[2])
return 1
`)

// Bus is one node's end of the shared states.
type Bus struct {
	client                  redis.UniversalClient
	records, times, channel string
	node                    string
	log                     *slog.Logger

	key      []byte // signs and checks records; nil: unsigned
	rejected atomic.Int64
	warned   atomic.Bool

	mu      sync.Mutex
	pending map[string]store.Account // changes Redis has not taken yet
	wake    chan struct{}
}

// New returns the bus of node on client; its keys start with prefix. With
// a key, records are signed and only validly signed ones are applied.
func New(client redis.UniversalClient, prefix, node string, key []byte, log *slog.Logger) *Bus {
	records, times := prefix+"states", prefix+"states:at"
	if _, ok := client.(*redis.ClusterClient); ok {
		// One slot for both hashes, which the publish script writes
		// together.
		records, times = prefix+"{states}", prefix+"{states}:at"
	}
	return &Bus{client: client, records: records, times: times, channel: prefix + "states",
		node: node, key: key, log: log, pending: map[string]store.Account{}, wake: make(chan struct{}, 1)}
}

// signedPrefix starts a signed record: "v1.<hex HMAC>.<JSON>".
const signedPrefix = "v1."

// seal returns the record of a change: signed with the key, or the JSON.
func (b *Bus) seal(js []byte) string {
	if b.key == nil {
		return string(js)
	}
	return signedPrefix + hex.EncodeToString(mac(b.key, js)) + "." + string(js)
}

func mac(key, js []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("mailbrake statebus\x00"))
	m.Write(js)
	return m.Sum(nil)
}

// Rejected returns how many records were ignored: unreadable, or not
// validly signed when the bus has a key.
func (b *Bus) Rejected() int64 { return b.rejected.Load() }

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
	js, err := json.Marshal(Change{Account: a, Node: b.node})
	if err != nil {
		return err
	}
	at := strconv.FormatInt(a.StateAt.UnixMicro(), 10)
	return publish.Run(ctx, b.client, []string{b.records, b.times}, a.Name, b.seal(js), at, b.channel).Err()
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

// Reshare queues states this node has recorded to be written again, as
// if just made (Run writes them when it connects): a change the node's
// last run could not write before it stopped reaches Redis, and with a
// key the node signs the states of its store that Redis may hold
// unsigned, from before cluster.key_file was set. A record in Redis that
// is later stays.
func (b *Bus) Reshare(as []store.Account) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, a := range as {
		if p, ok := b.pending[a.Name]; !ok || !p.StateAt.After(a.StateAt) {
			b.pending[a.Name] = a
		}
	}
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
	js, why := rec, ""
	if rest, ok := strings.CutPrefix(rec, signedPrefix); ok {
		sig, body, ok := strings.Cut(rest, ".")
		got, err := hex.DecodeString(sig)
		switch {
		case !ok || err != nil:
			why = "a signed record that is not readable"
		case b.key != nil && !hmac.Equal(got, mac(b.key, []byte(body))):
			why = "a record whose signature does not match this node's cluster.key_file (another key, or written by someone without it)"
		}
		js = body
	} else if b.key != nil {
		why = "an unsigned record (written by a node without cluster.key_file, or by someone without the key)"
	}
	var c Change
	if why == "" {
		if err := json.Unmarshal([]byte(js), &c); err != nil || c.Account.Name == "" || !c.Account.State.Valid() {
			why = "a record that is not readable"
		}
	}
	if why != "" {
		b.rejected.Add(1)
		// Once per process: a flood of bad records must not flood the log;
		// mailbrake_cluster_states_rejected_total counts them all.
		if !b.warned.Swap(true) {
			b.log.Warn("cluster: an account state in Redis ignored: "+why+"; further ones are only counted", "node", b.node)
		}
		return Change{}, false
	}
	return c, true
}
