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
// recipients), PREFIX{ACCOUNT}:k:KEY a message key's largest report so
// far. Both carry the account in braces, so Redis Cluster puts them in
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
local hs, ds = math.floor(now / ` + strconv.Itoa(hourSlot) + `), math.floor(now / ` + strconv.Itoa(daySlot) + `)
local hold, dold = hs - ` + strconv.Itoa(hourSlots) + `, ds - ` + strconv.Itoa(daySlots) + `
if write and (m > 0 or r > 0) then
  if m > 0 then
    redis.call('HINCRBY', KEYS[1], 'hm' .. hs, m)
    redis.call('HINCRBY', KEYS[1], 'dm' .. ds, m)
  end
  if r > 0 then
    redis.call('HINCRBY', KEYS[1], 'hr' .. hs, r)
    redis.call('HINCRBY', KEYS[1], 'dr' .. ds, r)
  end
  redis.call('EXPIRE', KEYS[1], ` + strconv.Itoa(24*3600+2*daySlot) + `)
end
local all = redis.call('HGETALL', KEYS[1])
local t = {0, 0, 0, 0}
local old = {}
for i = 1, #all, 2 do
  local f = all[i]
  local k = string.sub(f, 1, 2)
  local slot = tonumber(string.sub(f, 3))
  local v = tonumber(all[i + 1])
  if slot ~= nil and v ~= nil then
    if k == 'hm' or k == 'hr' then
      if slot > hold then
        if k == 'hm' then t[1] = t[1] + v else t[2] = t[2] + v end
      else
        old[#old + 1] = f
      end
    elseif k == 'dm' or k == 'dr' then
      if slot > dold then
        if k == 'dm' then t[3] = t[3] + v else t[4] = t[4] + v end
      else
        old[#old + 1] = f
      end
    end
  end
end
if write and #old > 0 then
  redis.call('HDEL', KEYS[1], unpack(old))
end
return t
`)

// Counters is a store.Counters in Redis. Its methods are safe for
// concurrent use.
type Counters struct {
	c      redis.UniversalClient
	prefix string
}

var _ store.Counters = (*Counters)(nil)

// New returns counters in the Redis c under keys starting with prefix
// (for example "mailbrake:", or one per installation sharing a Redis).
func New(c redis.UniversalClient, prefix string) *Counters {
	return &Counters{c: c, prefix: prefix}
}

func (c *Counters) windows(acct string) string { return c.prefix + "{" + acct + "}:w" }

// Charge implements store.Counters.
func (c *Counters) Charge(ctx context.Context, acct, msgKey string, t time.Time, msgs, rcpts int64) (store.Totals, error) {
	keys := []string{c.windows(acct)}
	if msgKey != "" {
		keys = append(keys, c.prefix+"{"+acct+"}:k:"+msgKey)
	}
	return c.run(ctx, keys, t, max(msgs, 0), max(rcpts, 0), true)
}

// Peek implements store.Counters.
func (c *Counters) Peek(ctx context.Context, acct string, t time.Time) (store.Totals, error) {
	return c.run(ctx, []string{c.windows(acct)}, t, 0, 0, false)
}

func (c *Counters) run(ctx context.Context, keys []string, t time.Time, m, r int64, write bool) (store.Totals, error) {
	w := "0"
	if write {
		w = "1"
	}
	v, err := chargeScript.Run(ctx, c.c, keys, t.Unix(), m, r, w).Int64Slice()
	if err != nil {
		return store.Totals{}, fmt.Errorf("redis counters: %w", err)
	}
	if len(v) != 4 {
		return store.Totals{}, errors.New("redis counters: the script returned no totals")
	}
	return store.Totals{Messages1h: v[0], Recipients1h: v[1], Messages24h: v[2], Recipients24h: v[3]}, nil
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
