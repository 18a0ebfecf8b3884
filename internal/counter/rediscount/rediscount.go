// Package rediscount implements store.Counters in Redis (or Valkey) for
// cluster mode: every MTA node charges the same per-account sliding windows,
// so a spam run split over two MTAs is counted as one run.
//
// One charge is one round trip: a Lua script (EVALSHA) that adds the
// message's amounts to the account's current one-minute and five-minute
// buckets, drops buckets that left their window, and returns the four
// totals. Redis runs a script atomically, so two nodes charging one
// account at the same moment neither lose nor double an update, and a
// message charged under its key from both protocol paths counts once at
// its largest report, as in the in-memory counters (internal/counter).
//
// Keys: PREFIX{ACCOUNT}:w is a hash of the account's buckets (fields
// hm<minute>, hr<minute>, dm<5-minute>, dr<5-minute>: messages and
// recipients) with the window totals and bounds, PREFIX{ACCOUNT}:k:KEY a
// message key's largest report so far. Both carry the account in braces, so Redis Cluster puts them in
// one slot. Windows are computed from the time each charge carries (the
// node's clock): keep the nodes' clocks in step (NTP), as Postfix farms
// do. Keys expire a day after their last charge.
package rediscount

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailbrake/mailbrake/internal/counter"
	"github.com/mailbrake/mailbrake/internal/store"
)

// Window geometry: the same as internal/counter's.
const (
	hourSlot  = 60
	hourSlots = 60
	daySlot   = 300
	daySlots  = 288
	keyTTL    = 3600 // a message key is remembered for an hour of charge time
)

// chargeScript adds ARGV[2] messages and ARGV[3] recipients at Unix time
// ARGV[1] (ARGV[4] = "1"; "0" only reads) and returns the totals of the
// hour and the day. With a second key, the amounts are the message's so
// far and only what exceeds its largest earlier report is added.
//
// Its cost does not grow with the account's buckets: the hash keeps the
// window totals (t:m1 t:r1 t:m24 t:r24) and, per window, the lowest and
// highest slot that may hold a bucket (lo:h hi:h lo:d hi:d). A call
// subtracts and deletes only the buckets that left the window since the
// last one, read by name (HMGET), so each bucket is visited once when it
// is written and once when it expires. Buckets are kept within one window
// of the newest slot charged: a charge older than that (a clock far
// behind, a replay) is already outside the window and is not added to it.
var chargeScript = redis.NewScript(`
local now = tonumber(ARGV[1])
local m = tonumber(ARGV[2])
local r = tonumber(ARGV[3])
local write = ARGV[4] == '1'
if #KEYS > 1 then
  local prev = redis.call('HMGET', KEYS[2], 'm', 'r', 'exp')
  local pm, pr, exp = tonumber(prev[1]) or 0, tonumber(prev[2]) or 0, tonumber(prev[3]) or 0
  if exp <= now then pm, pr = 0, 0 end
  local nm, nr = math.max(pm, m), math.max(pr, r)
  redis.call('HSET', KEYS[2], 'm', nm, 'r', nr, 'exp', now + ` + strconv.Itoa(keyTTL) + `)
  redis.call('EXPIRE', KEYS[2], ` + strconv.Itoa(2*keyTTL) + `)
  m, r = nm - pm, nr - pr
end
local W = KEYS[1]
local v = redis.call('HMGET', W, 't:m1', 't:r1', 't:m24', 't:r24', 'lo:h', 'hi:h', 'lo:d', 'hi:d')
local t = {tonumber(v[1]) or 0, tonumber(v[2]) or 0, tonumber(v[3]) or 0, tonumber(v[4]) or 0}
local fresh = false
local lo = {h = tonumber(v[5]), d = tonumber(v[7])}
local hi = {h = tonumber(v[6]), d = tonumber(v[8])}
local function window(w, slot, slots, im, ir)
  local cur = math.floor(now / slot)
  -- Expire the buckets that left the window: at most one window's worth.
  if hi[w] ~= nil then
    local a, b = math.max(lo[w], hi[w] - slots + 1), math.min(cur - slots, hi[w])
    if b >= a then
      local fields = {}
      for s = a, b do
        fields[#fields + 1] = w .. 'm' .. s
        fields[#fields + 1] = w .. 'r' .. s
      end
      local got = redis.call('HMGET', W, unpack(fields))
      for i = 1, #got, 2 do
        t[im] = t[im] - (tonumber(got[i]) or 0)
        t[ir] = t[ir] - (tonumber(got[i + 1]) or 0)
      end
      if write then
        redis.call('HDEL', W, unpack(fields))
        lo[w] = b + 1
        if lo[w] > hi[w] then
          lo[w], hi[w] = nil, nil
        end
      end
    end
  end
  -- A refund (negative amounts) takes back what a charge put in a bucket
  -- of the window, never more than the bucket holds.
  if write and (m < 0 or r < 0) then
    if hi[w] ~= nil and cur >= lo[w] and cur <= hi[w] and cur > hi[w] - slots then
      local got = redis.call('HMGET', W, w .. 'm' .. cur, w .. 'r' .. cur)
      local dm = math.max(m, -(tonumber(got[1]) or 0))
      local dr = math.max(r, -(tonumber(got[2]) or 0))
      if dm < 0 then redis.call('HINCRBY', W, w .. 'm' .. cur, dm) end
      if dr < 0 then redis.call('HINCRBY', W, w .. 'r' .. cur, dr) end
      t[im], t[ir] = t[im] + dm, t[ir] + dr
    end
  elseif write and (m > 0 or r > 0) and (hi[w] == nil or cur > hi[w] - slots) then
    if m > 0 then redis.call('HINCRBY', W, w .. 'm' .. cur, m) end
    if r > 0 then redis.call('HINCRBY', W, w .. 'r' .. cur, r) end
    t[im], t[ir] = t[im] + m, t[ir] + r
    if hi[w] == nil then
      lo[w], hi[w] = cur, cur
      fresh = true
    elseif cur > hi[w] then
      hi[w] = cur
      fresh = true
    elseif cur < lo[w] then
      lo[w] = cur
    end
  end
end
window('h', ` + strconv.Itoa(hourSlot) + `, ` + strconv.Itoa(hourSlots) + `, 1, 2)
window('d', ` + strconv.Itoa(daySlot) + `, ` + strconv.Itoa(daySlots) + `, 3, 4)
if write then
  local set = {'t:m1', t[1], 't:r1', t[2], 't:m24', t[3], 't:r24', t[4]}
  for _, w in ipairs({'h', 'd'}) do
    if hi[w] == nil then
      redis.call('HDEL', W, 'lo:' .. w, 'hi:' .. w)
    else
      set[#set + 1], set[#set + 2] = 'lo:' .. w, lo[w]
      set[#set + 1], set[#set + 2] = 'hi:' .. w, hi[w]
    end
  end
  redis.call('HSET', W, unpack(set))
  -- Kept a day after its newest bucket began: set when a bucket is new.
  if fresh then
    redis.call('EXPIRE', W, ` + strconv.Itoa(24*3600+2*daySlot) + `)
  end
end
return t
`)

// Counters is a store.Counters in Redis. Its methods are safe for
// concurrent use. Charges made at the same moment share round trips:
// they are sent as one pipeline (one write, one read on each side), which
// is most of what a charge costs Redis and this process at high rates.
type Counters struct {
	c      redis.UniversalClient
	prefix string
	node   string // message keys are this node's (NewForNode)

	start sync.Once
	calls chan *call
	stop  chan struct{}
	wg    sync.WaitGroup
}

// call is one script run waiting for its batch: done is closed, or then
// called, when it has run.
type call struct {
	keys []string
	args []any
	res  []int64
	err  error
	done chan struct{}
	then func([]int64, error)
}

// One batch is in flight at a time, made of what queued while the
// previous one was out: calls run in the order they were made, so a charge
// sent without waiting (ChargeAsync) is seen by every call after it.
const maxBatch = 512

var (
	_ store.Counters     = (*Counters)(nil)
	_ store.AsyncCharger = (*Counters)(nil)
	_ store.PeekCharger  = (*Counters)(nil)
)

// New returns counters in the Redis c under keys starting with prefix
// (for example "mailbrake:", or one per installation sharing a Redis).
// It does not connect; Close stops its batching.
func New(c redis.UniversalClient, prefix string) *Counters {
	return &Counters{c: c, prefix: prefix, calls: make(chan *call, 4096), stop: make(chan struct{})}
}

// NewForNode is New for one node of a cluster: its message keys are the
// node's own. A message key is a Postfix queue ID or instance, unique
// within one MTA only: two MTAs may give two messages of one account the
// same short queue ID within the key's hour, and the second message's
// amounts would be taken as the first's repeated.
func NewForNode(c redis.UniversalClient, prefix, node string) *Counters {
	cs := New(c, prefix)
	cs.node = node
	return cs
}

// messageKey is the Redis key remembering what a message was charged.
func (c *Counters) messageKey(acct, msgKey string) string {
	if c.node != "" {
		return c.prefix + "{" + acct + "}:k:" + c.node + ":" + msgKey
	}
	return c.prefix + "{" + acct + "}:k:" + msgKey
}

// Close stops sending; calls made after it fail.
func (c *Counters) Close() {
	c.start.Do(func() {}) // never start after Close
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	c.wg.Wait()
}

func (c *Counters) windows(acct string) string { return c.prefix + "{" + acct + "}:w" }

// Charge implements store.Counters.
func (c *Counters) Charge(ctx context.Context, acct, msgKey string, t time.Time, msgs, rcpts int64) (store.Totals, error) {
	keys := []string{c.windows(acct)}
	if msgKey != "" {
		keys = append(keys, c.messageKey(acct, msgKey))
	}
	return c.run(ctx, keys, t, max(msgs, 0), max(rcpts, 0), true)
}

// Peek implements store.Counters.
func (c *Counters) Peek(ctx context.Context, acct string, t time.Time) (store.Totals, error) {
	return c.run(ctx, []string{c.windows(acct)}, t, 0, 0, false)
}

var errClosed = errors.New("redis counters: closed")

func (c *Counters) run(ctx context.Context, keys []string, t time.Time, m, r int64, write bool) (store.Totals, error) {
	w := "0"
	if write {
		w = "1"
	}
	c.startBatching()
	cl := &call{keys: keys, args: []any{t.Unix(), m, r, w}, done: make(chan struct{})}
	select {
	case c.calls <- cl:
	case <-c.stop:
		return store.Totals{}, errClosed
	case <-ctx.Done():
		return store.Totals{}, fmt.Errorf("redis counters: %w", ctx.Err())
	}
	select {
	case <-cl.done:
	case <-ctx.Done():
		return store.Totals{}, fmt.Errorf("redis counters: %w", ctx.Err())
	}
	if cl.err != nil {
		return store.Totals{}, fmt.Errorf("redis counters: %w", cl.err)
	}
	v := cl.res
	if len(v) != 4 {
		return store.Totals{}, errors.New("redis counters: the script returned no totals")
	}
	return store.Totals{Messages1h: v[0], Recipients1h: v[1], Messages24h: v[2], Recipients24h: v[3]}, nil
}

func (c *Counters) startBatching() {
	c.start.Do(func() {
		c.wg.Add(1)
		go c.batch()
	})
}

// ChargeAsync implements store.AsyncCharger: the charge is queued for the
// next pipeline and done is told how it went.
func (c *Counters) ChargeAsync(ctx context.Context, acct, msgKey string, t time.Time, msgs, rcpts int64, done func(error)) {
	keys := []string{c.windows(acct)}
	if msgKey != "" {
		keys = append(keys, c.messageKey(acct, msgKey))
	}
	c.async(ctx, keys, []any{t.Unix(), max(msgs, 0), max(rcpts, 0), "1"}, done)
}

// async queues a script call for the next pipeline; done is told how it
// went.
func (c *Counters) async(ctx context.Context, keys []string, args []any, done func(error)) {
	c.startBatching()
	cl := &call{keys: keys, args: args, then: func(_ []int64, err error) {
		if err != nil {
			err = fmt.Errorf("redis counters: %w", err)
		}
		done(err)
	}}
	select {
	case c.calls <- cl:
	case <-c.stop:
		done(errClosed)
	case <-ctx.Done():
		done(fmt.Errorf("redis counters: %w", ctx.Err()))
	}
}

// PeekCharge implements store.PeekCharger: one script call charges and
// returns the totals after, from which the amounts are taken out. A
// charge is added at its time's bucket, so before = after - amounts
// (unless the charge was more than a window behind the newest one, when
// nothing was added: the totals are then taken as they are).
func (c *Counters) PeekCharge(ctx context.Context, acct string, t time.Time, msgs, rcpts int64) (store.Totals, bool, error) {
	msgs, rcpts = max(msgs, 0), max(rcpts, 0)
	after, err := c.run(ctx, []string{c.windows(acct)}, t, msgs, rcpts, true)
	if err != nil {
		return store.Totals{}, false, err
	}
	return store.Totals{Messages1h: max(0, after.Messages1h-msgs), Recipients1h: max(0, after.Recipients1h-rcpts),
		Messages24h: max(0, after.Messages24h-msgs), Recipients24h: max(0, after.Recipients24h-rcpts)}, true, nil
}

// Refund implements store.PeekCharger: the amounts are taken out of the
// bucket of t with the next pipeline.
func (c *Counters) Refund(ctx context.Context, acct string, t time.Time, msgs, rcpts int64, done func(error)) {
	c.async(ctx, []string{c.windows(acct)}, []any{t.Unix(), -max(msgs, 0), -max(rcpts, 0), "1"}, done)
}

// batch sends what queued as one pipeline of EVALSHA, and again with EVAL
// for any that Redis no longer knew the script of (a restarted Redis).
func (c *Counters) batch() {
	defer c.wg.Done()
	var b []*call
	for {
		b = b[:0]
		select {
		case cl := <-c.calls:
			b = append(b, cl)
		case <-c.stop:
			for { // what is still queued fails
				select {
				case cl := <-c.calls:
					if cl.then != nil {
						cl.then(nil, errClosed)
					} else {
						cl.err = errClosed
						close(cl.done)
					}
				default:
					return
				}
			}
		}
	more:
		for len(b) < maxBatch {
			select {
			case cl := <-c.calls:
				b = append(b, cl)
			default:
				break more
			}
		}
		c.send(b, false)
		var retry []*call
		for _, cl := range b {
			if cl.err != nil && redis.HasErrorPrefix(cl.err, "NOSCRIPT") {
				retry = append(retry, cl)
			}
		}
		if len(retry) > 0 {
			c.send(retry, true)
		}
		for _, cl := range b {
			if cl.then != nil {
				cl.then(cl.res, cl.err)
			} else {
				close(cl.done)
			}
		}
	}
}

func (c *Counters) send(b []*call, eval bool) {
	// The client's own timeouts bound the round trip; stopping does not
	// cut a batch short (its callers are waiting for it).
	ctx := context.Background()
	pipe := c.c.Pipeline()
	cmds := make([]*redis.Cmd, len(b))
	for i, cl := range b {
		if eval {
			cmds[i] = chargeScript.Eval(ctx, pipe, cl.keys, cl.args...)
		} else {
			cmds[i] = chargeScript.EvalSha(ctx, pipe, cl.keys, cl.args...)
		}
	}
	pipe.Exec(ctx) // each command carries its own error
	for i, cl := range b {
		cl.res, cl.err = cmds[i].Int64Slice()
	}
}

// Series returns the account's non-empty five-minute buckets of the last
// 24 hours at t, oldest first (for timelines); nil when Redis does not
// answer.
func (c *Counters) Series(acct string, t time.Time) []counter.Point {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	all, err := c.c.HGetAll(ctx, c.windows(acct)).Result()
	if err != nil {
		return nil
	}
	oldest := t.Unix()/daySlot - daySlots
	by := map[int64]*counter.Point{}
	var slots []int64
	for f, s := range all {
		if len(f) < 3 || f[0] != 'd' {
			continue
		}
		slot, err := strconv.ParseInt(f[2:], 10, 64)
		v, verr := strconv.ParseInt(s, 10, 64)
		if err != nil || verr != nil || slot <= oldest {
			continue
		}
		p := by[slot]
		if p == nil {
			p = &counter.Point{Time: time.Unix(slot*daySlot, 0).UTC()}
			by[slot] = p
			slots = append(slots, slot)
		}
		switch f[1] {
		case 'm':
			p.Messages += v
		case 'r':
			p.Recipients += v
		}
	}
	slices.Sort(slots)
	out := make([]counter.Point, 0, len(slots))
	for _, s := range slots {
		out = append(out, *by[s])
	}
	return out
}

// Ping checks that Redis answers (readiness).
func (c *Counters) Ping(ctx context.Context) error {
	return c.c.Ping(ctx).Err()
}
