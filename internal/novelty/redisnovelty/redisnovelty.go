// Package redisnovelty keeps the recipient-novelty memory of
// internal/novelty in Redis (or Valkey) for cluster mode: every MTA node
// records and reads one table per account, so a recipient first written
// to through one MTA is known on all of them, and a hijacked account
// mailing strangers through two MTAs has all its first-time recipients
// counted together.
//
// One message is one round trip: a Lua script (EVALSHA) that forgets the
// account's recipients older than the lookback, records the message's
// recipients (the least recently mailed forgotten beyond MaxPerAccount),
// adds the first-time ones to the account's one-minute and ten-minute
// buckets and returns the account's windows. Redis runs a script
// atomically, so two nodes recording one account at the same moment give
// the totals one node would: the script is the in-memory
// novelty.Tracker's Observe, step for step (TestMatchesTracker compares
// them over thousands of random messages).
//
// Keys, all with the account in braces so Redis Cluster keeps them in one
// slot: PREFIX{ACCOUNT}:r a sorted set of recipient hashes (8 bytes, never
// addresses) scored by last-mailed time × 2^20 + a sequence number, which
// orders recipients mailed in the same second as the in-memory list does;
// PREFIX{ACCOUNT}:m a hash of the account's first message, newest second
// and sequence, and newest bucket slots; PREFIX{ACCOUNT}:h and :d the
// first-time buckets. They expire after the lookback (or the shorter idle
// time the site chose, engine.forget_idle_after) without a message, as the
// in-memory tracker forgets an idle account. PREFIX"since" is when the
// cluster first recorded novelty (its learning period), PREFIX"key" the
// identifier of the hash key: nodes must share novelty.key_file, and a
// node with another key is refused at start rather than make every
// recipient look new.
package redisnovelty

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailbrake/mailbrake/internal/novelty"
)

// Window geometry: the same as internal/novelty's.
const (
	hourSlot  = 60
	hourSlots = 60
	daySlot   = 600
	daySlots  = 144
	hour      = 3600
	day       = 86400
	seqBits   = 1 << 20 // score = second × seqBits + sequence
)

// observeScript records ARGV[6..] (pairs of an 8-byte recipient hash and
// "1" when it is external) at Unix time ARGV[1] when ARGV[5] is "1", and
// returns the message's new and new external recipients and the account's
// windows: first-time in the last hour and day, distinct in the last hour
// and day, known, first message. ARGV[2] is the lookback, ARGV[3] the
// maximum per account, ARGV[4] the keys' time to live (seconds).
//
// The in-memory tracker's steps, in its order (internal/novelty,
// Tracker.Observe): expire recipients last mailed at or before
// now-lookback; touch each recipient in hash order, stamped with the
// newest time seen when the message is older (clock skew, replays),
// forgetting the least recently mailed first when the table is full;
// prune the buckets that left their window and add the first-time count
// to the current bucket (or to the newest, if that is later); read the
// windows at now.
var observeScript = redis.NewScript(`
local now = tonumber(ARGV[1])
local lookback = tonumber(ARGV[2])
local max = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local write = ARGV[5] == '1'
local R, M, H, D = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local S = ` + strconv.Itoa(seqBits) + `
local function score(x) return string.format('%.0f', x) end
redis.call('ZREMRANGEBYSCORE', R, '-inf', '(' .. score((now - lookback + 1) * S))
local m = redis.call('HMGET', M, 'first', 'ls', 'sq', 'hn', 'dn')
local first, ls, sq, hn, dn = tonumber(m[1]), tonumber(m[2]), tonumber(m[3]) or 0, tonumber(m[4]), tonumber(m[5])
local new, newext = 0, 0
local hoursOld = math.floor(now / ` + strconv.Itoa(hourSlot) + `) - ` + strconv.Itoa(hourSlots) + `
local daysOld = math.floor(now / ` + strconv.Itoa(daySlot) + `) - ` + strconv.Itoa(daySlots) + `
local function buckets(key, oldest, newest, cur, add)
  local all = redis.call('HGETALL', key)
  local n, gone = 0, {}
  for i = 1, #all, 2 do
    local slot = tonumber(all[i])
    if slot <= oldest then
      gone[#gone + 1] = all[i]
    else
      n = n + tonumber(all[i + 1])
    end
  end
  if write and #gone > 0 then redis.call('HDEL', key, unpack(gone)) end
  if not write then return n, newest end
  if newest and newest <= oldest then newest = nil end
  if add > 0 then
    local slot = cur
    if newest and newest > cur then slot = newest end
    redis.call('HINCRBY', key, slot, add)
    n = n + add
    newest = slot
  end
  return n, newest
end
if write then
  if not first then
    first = now
  end
  local t = now
  local head = redis.call('ZREVRANGE', R, 0, 0, 'WITHSCORES')
  if head[2] then
    local seen = math.floor(tonumber(head[2]) / S)
    if seen > t then t = seen end
  end
  if ls and ls > t then t = ls end
  if ls ~= t then sq = -1 end
  local card = redis.call('ZCARD', R)
  for i = 6, #ARGV, 2 do
    local mem = ARGV[i]
    if not redis.call('ZSCORE', R, mem) then
      if card >= max then
        redis.call('ZPOPMIN', R)
        card = card - 1
      end
      card = card + 1
      new = new + 1
      if ARGV[i + 1] == '1' then newext = newext + 1 end
    end
    if sq < S - 1 then sq = sq + 1 end
    redis.call('ZADD', R, score(t * S + sq), mem)
  end
  ls = t
end
local ft1h, ft24h
ft1h, hn = buckets(H, hoursOld, hn, math.floor(now / ` + strconv.Itoa(hourSlot) + `), new)
ft24h, dn = buckets(D, daysOld, dn, math.floor(now / ` + strconv.Itoa(daySlot) + `), new)
if write then
  local f = {'first', first, 'ls', ls, 'sq', sq}
  if hn then f[#f + 1] = 'hn'; f[#f + 1] = hn end
  if dn then f[#f + 1] = 'dn'; f[#f + 1] = dn end
  redis.call('HSET', M, unpack(f))
  for _, k in ipairs(KEYS) do redis.call('EXPIRE', k, ttl) end
end
local d1h = redis.call('ZCOUNT', R, score((now - ` + strconv.Itoa(hour) + ` + 1) * S), '+inf')
local d24h = redis.call('ZCOUNT', R, score((now - ` + strconv.Itoa(day) + ` + 1) * S), '+inf')
local known = redis.call('ZCARD', R)
return {new, newext, ft1h, ft24h, d1h, d24h, known, first or 0}
`)

// Memory is the novelty memory of a cluster, in Redis.
type Memory struct {
	c        redis.UniversalClient
	prefix   string
	t        *novelty.Tracker // hashes recipients; never records
	lookback int64
	max      int
	ttl      int64
	since    atomic.Int64 // Unix seconds; 0: not yet known
}

// Options configures a Memory.
type Options struct {
	// Hasher hashes recipients under the key every node shares, with the
	// tracker's lookback, maximum per account and local domains. Its own
	// table is never used.
	Hasher *novelty.Tracker
	// Idle, when shorter than the lookback, forgets an account that
	// mailed nobody for that long (engine.forget_idle_after).
	Idle time.Duration
}

// New returns a Memory keeping its keys under prefix. It does not
// connect.
func New(c redis.UniversalClient, prefix string, o Options) *Memory {
	m := &Memory{c: c, prefix: prefix, t: o.Hasher, lookback: int64(o.Hasher.Lookback() / time.Second), max: o.Hasher.MaxPerAccount()}
	m.ttl = m.lookback
	if s := int64(o.Idle / time.Second); s > 0 && s < m.ttl {
		m.ttl = s
	}
	return m
}

func (m *Memory) keys(account string) []string {
	a := m.prefix + "{" + account + "}:"
	return []string{a + "r", a + "m", a + "h", a + "d"}
}

// ErrOtherKey: the cluster's memory was recorded under another
// novelty.key_file.
var ErrOtherKey = errors.New("the cluster's novelty memory was recorded under another novelty key: copy novelty.key_file from a node of the cluster")

// Join checks that this node hashes under the cluster's key (recording
// it when this is the first node) and learns when the cluster started
// recording novelty (recording now when it had not).
func (m *Memory) Join(ctx context.Context, now time.Time) error {
	id := strconv.FormatUint(m.t.KeyID(), 16)
	pipe := m.c.Pipeline()
	pipe.SetNX(ctx, m.prefix+"key", id, 0)
	kc := pipe.Get(ctx, m.prefix+"key")
	pipe.SetNX(ctx, m.prefix+"since", now.Unix(), 0)
	sc := pipe.Get(ctx, m.prefix+"since")
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("redisnovelty: %w", err)
	}
	if kc.Val() != id {
		return ErrOtherKey
	}
	s, err := strconv.ParseInt(sc.Val(), 10, 64)
	if err != nil {
		return fmt.Errorf("redisnovelty: %ssince is not a time: %w", m.prefix, err)
	}
	m.since.Store(s)
	return nil
}

// Since returns when the cluster started recording novelty, once Join
// succeeded; the zero time before.
func (m *Memory) Since() time.Time {
	if s := m.since.Load(); s != 0 {
		return time.Unix(s, 0).UTC()
	}
	return time.Time{}
}

// Observe records one message from account to recipients at at and
// returns the message's novelty and the account's windows including it,
// as novelty.Tracker.Observe does.
func (m *Memory) Observe(ctx context.Context, account string, recipients []string, at time.Time) (novelty.Stats, error) {
	st, rs := m.t.Prepare(account, recipients)
	st, err := m.run(ctx, account, st, rs, at, true)
	if err == nil && m.since.Load() == 0 {
		// Redis did not answer at start: join now that it does.
		if jerr := m.Join(ctx, at); errors.Is(jerr, ErrOtherKey) {
			return novelty.Stats{}, jerr
		}
	}
	return st, err
}

// Record records a message already prepared (a replay after an outage)
// and returns its stats.
func (m *Memory) Record(ctx context.Context, account string, rs []novelty.Recipient, at time.Time) (novelty.Stats, error) {
	return m.run(ctx, account, novelty.Stats{}, rs, at, true)
}

// Prepare hashes a message's recipients (see novelty.Tracker.Prepare).
func (m *Memory) Prepare(account string, recipients []string) (novelty.Stats, []novelty.Recipient) {
	return m.t.Prepare(account, recipients)
}

// Peek returns the account's windows at at without recording a message.
func (m *Memory) Peek(ctx context.Context, account string, at time.Time) (novelty.Stats, error) {
	return m.run(ctx, account, novelty.Stats{}, nil, at, false)
}

func (m *Memory) run(ctx context.Context, account string, st novelty.Stats, rs []novelty.Recipient, at time.Time, write bool) (novelty.Stats, error) {
	now := at.Unix()
	args := make([]any, 0, 5+2*len(rs))
	w := "0"
	if write {
		w = "1"
	}
	args = append(args, now, m.lookback, m.max, m.ttl, w)
	for _, r := range rs {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], r.Hash)
		ext := "0"
		if r.External {
			ext = "1"
		}
		args = append(args, string(b[:]), ext)
	}
	v, err := observeScript.Run(ctx, m.c, m.keys(account), args...).Int64Slice()
	if err != nil {
		return novelty.Stats{}, fmt.Errorf("redisnovelty: %w", err)
	}
	if len(v) != 8 {
		return novelty.Stats{}, fmt.Errorf("redisnovelty: the script returned %d values, want 8", len(v))
	}
	st.New, st.NewExternal = int(v[0]), int(v[1])
	st.FirstTime1h, st.FirstTime24h = int(v[2]), int(v[3])
	st.Distinct1h, st.Distinct24h, st.Known = int(v[4]), int(v[5]), int(v[6])
	if first := v[7]; first > 0 && now > first {
		st.Tracked = time.Duration(now-first) * time.Second
	}
	return st, nil
}
