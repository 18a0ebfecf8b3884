package counter

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/maphash"
	"sync"
	"time"

	"github.com/mailbrake/mailbrake/internal/store"
)

const (
	shards = 64

	hourSlot   = int64(time.Minute / time.Second) // seconds per hour bucket
	hourSlots  = 60                               // 60 one-minute buckets: the hour window is exact to the minute
	daySlot    = int64(5 * time.Minute / time.Second)
	daySlots   = 288 // 288 five-minute buckets: the day window spans 23h55m–24h, and a timeline shows the last hours at 5-minute resolution
	keyTTL     = time.Hour
	sweepEvery = 4096 // charges per shard between sweeps of expired message keys
)

type bucket struct {
	slot int64
	m, r uint32
}

type account struct {
	hour, day []bucket // oldest first
	dirty     bool
}

func add(bs []bucket, slot int64, m, r uint32) []bucket {
	if n := len(bs); n > 0 && bs[n-1].slot == slot {
		bs[n-1].m += m
		bs[n-1].r += r
		return bs
	}
	// A charge timestamped before the newest bucket (clock skew between
	// nodes, replays) lands in the newest bucket rather than reordering.
	if n := len(bs); n > 0 && bs[n-1].slot > slot {
		bs[n-1].m += m
		bs[n-1].r += r
		return bs
	}
	if len(bs) == cap(bs) {
		// A quarter more, not append's double (see novelty's tables).
		grown := make([]bucket, len(bs), len(bs)+max(2, len(bs)/4))
		copy(grown, bs)
		bs = grown
	}
	return append(bs, bucket{slot, m, r})
}

// clampFuture merges the buckets after slot into one at slot.
func clampFuture(bs []bucket, slot int64) []bucket {
	i := len(bs)
	for i > 0 && bs[i-1].slot > slot {
		i--
	}
	if i == len(bs) {
		return bs
	}
	var m, r uint32
	for _, b := range bs[i:] {
		m += b.m
		r += b.r
	}
	bs = bs[:i]
	return add(bs, slot, m, r)
}

// merge adds the buckets of b into a, both ordered by slot.
func merge(a, b []bucket) []bucket {
	if len(b) == 0 {
		return a
	}
	out := make([]bucket, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || i < len(a) && a[i].slot < b[j].slot:
			out = append(out, a[i])
			i++
		case i == len(a) || b[j].slot < a[i].slot:
			out = append(out, b[j])
			j++
		default:
			out = append(out, bucket{a[i].slot, clamp(int64(a[i].m) + int64(b[j].m)), clamp(int64(a[i].r) + int64(b[j].r))})
			i++
			j++
		}
	}
	return out
}

// prune drops buckets at or before oldest.
func prune(bs []bucket, oldest int64) []bucket {
	i := 0
	for i < len(bs) && bs[i].slot <= oldest {
		i++
	}
	if i == 0 {
		return bs
	}
	n := copy(bs, bs[i:])
	return bs[:n]
}

func sum(bs []bucket, oldest int64) (m, r int64) {
	for i := len(bs) - 1; i >= 0 && bs[i].slot > oldest; i-- {
		m += int64(bs[i].m)
		r += int64(bs[i].r)
	}
	return
}

func (a *account) totals(now int64) store.Totals {
	var t store.Totals
	t.Messages1h, t.Recipients1h = sum(a.hour, now/hourSlot-hourSlots)
	t.Messages24h, t.Recipients24h = sum(a.day, now/daySlot-daySlots)
	return t
}

// charged is what one message key has been charged so far.
type charged struct {
	exp  int64 // unix seconds
	m, r int64
}

type shard struct {
	mu       sync.Mutex
	accounts map[string]*account
	keys     map[string]charged // account + message key → what it was charged
	charges  int
}

// Memory is an in-memory store.Counters.
type Memory struct {
	seed   maphash.Seed
	shards [shards]shard
}

var _ store.Counters = (*Memory)(nil)

// NewMemory returns empty counters.
func NewMemory() *Memory {
	m := &Memory{seed: maphash.MakeSeed()}
	for i := range m.shards {
		m.shards[i].accounts = map[string]*account{}
		m.shards[i].keys = map[string]charged{}
	}
	return m
}

func (c *Memory) shard(account string) *shard {
	return &c.shards[maphash.String(c.seed, account)%shards]
}

func clamp(v int64) uint32 {
	if v < 0 {
		return 0
	}
	if v > 1<<31 {
		return 1 << 31
	}
	return uint32(v)
}

// Charge implements store.Counters.
func (c *Memory) Charge(_ context.Context, acct, msgKey string, t time.Time, msgs, rcpts int64) (store.Totals, error) {
	now := t.Unix()
	s := c.shard(acct)
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[acct]
	if a == nil {
		a = &account{}
		s.accounts[acct] = a
	}
	if msgKey != "" {
		// msgs and rcpts are the message's amounts so far: charge only
		// what exceeds what the key was charged before.
		k := acct + "\x00" + msgKey
		prev := s.keys[k]
		if prev.exp <= now {
			prev = charged{}
		}
		next := charged{exp: now + int64(keyTTL/time.Second), m: max(prev.m, msgs), r: max(prev.r, rcpts)}
		s.keys[k] = next
		msgs, rcpts = next.m-prev.m, next.r-prev.r
	}
	if msgs > 0 || rcpts > 0 {
		m, r := clamp(msgs), clamp(rcpts)
		a.hour = add(prune(a.hour, now/hourSlot-hourSlots), now/hourSlot, m, r)
		a.day = add(prune(a.day, now/daySlot-daySlots), now/daySlot, m, r)
		a.dirty = true
	}
	s.charges++
	if s.charges%sweepEvery == 0 {
		for k, c := range s.keys {
			if c.exp <= now {
				delete(s.keys, k)
			}
		}
	}
	return a.totals(now), nil
}

// Peek implements store.Counters.
func (c *Memory) Peek(_ context.Context, acct string, t time.Time) (store.Totals, error) {
	s := c.shard(acct)
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[acct]
	if a == nil {
		return store.Totals{}, nil
	}
	return a.totals(t.Unix()), nil
}

// Sweep drops accounts whose windows are empty at t and expired message
// keys, and returns how many accounts remain.
func (c *Memory) Sweep(t time.Time) int {
	now := t.Unix()
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for name, a := range s.accounts {
			a.hour = prune(a.hour, now/hourSlot-hourSlots)
			a.day = prune(a.day, now/daySlot-daySlots)
			if len(a.day) == 0 && len(a.hour) == 0 && !a.dirty {
				delete(s.accounts, name)
			}
		}
		for k, c := range s.keys {
			if c.exp <= now {
				delete(s.keys, k)
			}
		}
		n += len(s.accounts)
		s.mu.Unlock()
	}
	return n
}

// Dirty returns an encoded snapshot of every account changed since the last
// call (nil value: the account is empty and can be deleted), and marks them
// clean.
func (c *Memory) Dirty() map[string][]byte {
	out := map[string][]byte{}
	for i := range c.shards {
		c.dirtyShard(i, out)
	}
	return out
}

// DirtyParts is how many parts DirtyPart splits Dirty into.
func (c *Memory) DirtyParts() int { return shards }

// DirtyPart is Dirty for one part of the accounts (one shard): the daemon
// saves a million accounts a part at a time instead of building one map
// of all of them.
func (c *Memory) DirtyPart(i int) map[string][]byte {
	out := map[string][]byte{}
	c.dirtyShard(i, out)
	return out
}

func (c *Memory) dirtyShard(i int, out map[string][]byte) {
	s := &c.shards[i]
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, a := range s.accounts {
		if !a.dirty {
			continue
		}
		a.dirty = false
		if len(a.hour) == 0 && len(a.day) == 0 {
			out[name] = nil
			continue
		}
		out[name] = encode(a)
	}
}

// Restore loads snapshots produced by Dirty. Undecodable entries are skipped
// and counted in the returned error.
func (c *Memory) Restore(snaps map[string][]byte) error {
	return c.RestoreAt(snaps, time.Now())
}

// RestoreAt is Restore with the time of the restore given. An account
// charged since this Memory was created keeps those charges and adds the
// restored ones (the daemon restores in the background while it decides).
// Buckets a clock that was ahead stamped in the future (the wall clock
// stepped back since) are moved to now, so that they count once and then
// age out instead of counting until time catches up with them.
func (c *Memory) RestoreAt(snaps map[string][]byte, now time.Time) error {
	bad := 0
	sec := now.Unix()
	for name, b := range snaps {
		a, err := decode(b)
		if err != nil {
			bad++
			continue
		}
		a.hour = clampFuture(a.hour, sec/hourSlot)
		a.day = clampFuture(a.day, sec/daySlot)
		s := c.shard(name)
		s.mu.Lock()
		if live := s.accounts[name]; live != nil {
			// Charged since start (a restore runs while mail flows):
			// both count.
			live.hour = merge(live.hour, a.hour)
			live.day = merge(live.day, a.day)
			live.dirty = true
		} else {
			s.accounts[name] = a
		}
		s.mu.Unlock()
	}
	if bad > 0 {
		return errors.New("counter: skipped undecodable snapshots")
	}
	return nil
}

// snapVersion 2: day buckets of five minutes. Version 1 (ten-minute day
// buckets) is still read: its day slots are converted, so an upgrade keeps
// the windows.
const (
	snapVersion   = 2
	snapVersionV1 = 1
)

func encode(a *account) []byte {
	b := make([]byte, 0, 3+(len(a.hour)+len(a.day))*16)
	b = append(b, snapVersion)
	b = binary.AppendUvarint(b, uint64(len(a.hour)))
	for _, x := range a.hour {
		b = binary.AppendVarint(b, x.slot)
		b = binary.AppendUvarint(b, uint64(x.m))
		b = binary.AppendUvarint(b, uint64(x.r))
	}
	b = binary.AppendUvarint(b, uint64(len(a.day)))
	for _, x := range a.day {
		b = binary.AppendVarint(b, x.slot)
		b = binary.AppendUvarint(b, uint64(x.m))
		b = binary.AppendUvarint(b, uint64(x.r))
	}
	return b
}

var errSnapshot = errors.New("counter: bad snapshot")

func decode(b []byte) (*account, error) {
	if len(b) < 1 || (b[0] != snapVersion && b[0] != snapVersionV1) {
		return nil, errSnapshot
	}
	v1 := b[0] == snapVersionV1
	b = b[1:]
	readList := func(max int) ([]bucket, error) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(max) {
			return nil, errSnapshot
		}
		b = b[k:]
		out := make([]bucket, 0, n)
		for i := uint64(0); i < n; i++ {
			slot, k1 := binary.Varint(b)
			if k1 <= 0 {
				return nil, errSnapshot
			}
			b = b[k1:]
			m, k2 := binary.Uvarint(b)
			if k2 <= 0 {
				return nil, errSnapshot
			}
			b = b[k2:]
			r, k3 := binary.Uvarint(b)
			if k3 <= 0 {
				return nil, errSnapshot
			}
			b = b[k3:]
			if len(out) > 0 && slot <= out[len(out)-1].slot {
				return nil, errSnapshot
			}
			out = append(out, bucket{slot, clamp(int64(m)), clamp(int64(r))})
		}
		return out, nil
	}
	h, err := readList(hourSlots + 1)
	if err != nil {
		return nil, err
	}
	d, err := readList(daySlots + 1)
	if err != nil {
		return nil, err
	}
	if len(b) != 0 {
		return nil, errSnapshot
	}
	if v1 {
		for i := range d {
			d[i].slot *= 2 // a ten-minute bucket's start as a five-minute slot
		}
	}
	return &account{hour: h, day: d}, nil
}

// Point is one five-minute bucket of an account's day window.
type Point struct {
	Time       time.Time // start of the bucket, UTC
	Messages   int64
	Recipients int64
}

// Series returns the non-empty five-minute buckets of an account's last 24
// hours at t, oldest first (for timelines).
func (c *Memory) Series(acct string, t time.Time) []Point {
	s := c.shard(acct)
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[acct]
	if a == nil {
		return nil
	}
	oldest := t.Unix()/daySlot - daySlots
	var out []Point
	for _, b := range a.day {
		if b.slot <= oldest {
			continue
		}
		out = append(out, Point{Time: time.Unix(b.slot*daySlot, 0).UTC(), Messages: int64(b.m), Recipients: int64(b.r)})
	}
	return out
}
