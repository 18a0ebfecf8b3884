package novelty

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailbrake/mailbrake/internal/keyhash"
)

const (
	shards = 64

	// DefaultLookback is how long a recipient stays known: a quarter covers
	// the monthly and quarterly correspondents of an ordinary mailbox, so a
	// hijacked account mailing its address book lights up while the
	// account's own routine does not.
	DefaultLookback = 90 * 24 * time.Hour
	// DefaultMaxPerAccount bounds an account's table. Few mailboxes write
	// to more than a few thousand people a quarter; beyond that the oldest
	// correspondents are forgotten first, which at worst makes a returning
	// correspondent look new.
	DefaultMaxPerAccount = 5000

	hourSlot  = int64(time.Minute / time.Second) // seconds per hour bucket
	hourSlots = 60                               // 60 one-minute buckets, as in internal/counter
	daySlot   = int64(10 * time.Minute / time.Second)
	daySlots  = 144 // 144 ten-minute buckets: the day window spans 23h50m–24h

	hour = int64(time.Hour / time.Second)
	day  = int64(24 * time.Hour / time.Second)

	none = -1 // no entry
)

// Options configures a Tracker. Zero fields take their defaults.
type Options struct {
	// Lookback is how long after its last message a recipient is still
	// known; later it is first-time again. Default DefaultLookback.
	Lookback time.Duration
	// MaxPerAccount caps the recipients remembered per account; the least
	// recently mailed is forgotten first. Default DefaultMaxPerAccount.
	MaxPerAccount int
	// LocalDomains are the domains whose recipients are not external
	// (exact, case-insensitive match of the part after the last @).
	LocalDomains []string
	// Key keys the recipient hash. Any length; it is reduced with SHA-256.
	// Empty: a random key per process, and snapshots only restore into the
	// same Tracker. Set it (from a secret file) to keep novelty across
	// restarts.
	Key []byte
}

// Stats describes one message's recipients and the account's recent
// recipients. The message fields are zero from Peek.
type Stats struct {
	New      int // recipients of this message not mailed by the account within Lookback
	Distinct int // distinct recipients of this message
	Domains  int // distinct recipient domains of this message
	External int // distinct recipients of this message outside LocalDomains
	// NewExternal are the first-time recipients outside LocalDomains
	// (without LocalDomains: outside the account's own domain).
	NewExternal int

	FirstTime1h, FirstTime24h int // first-time recipients over the last hour / day (sliding buckets)
	Distinct1h, Distinct24h   int // distinct recipients last mailed within the last hour / day (exact, from the table)
	Known                     int // recipients currently remembered for the account
	// Tracked is how long the account has been observed: since its first
	// message, or since it was last forgotten (nothing mailed for
	// Lookback). A caller can hold back judgement on accounts tracked
	// only briefly, whose every recipient is first-time.
	Tracked time.Duration
}

// entry is one remembered recipient: 24 bytes, linked into a list ordered
// by last-seen time through indices into account.ents.
type entry struct {
	h            uint64 // keyed hash of the lower-cased address
	seen         int64  // unix seconds of the last message to it
	newer, older int32  // neighbours in the list, or none
}

type bucket struct {
	slot int64
	n    uint32
}

type account struct {
	idx        map[uint64]int32 // hash → index into ents; nil while ents is small (linear search)
	ents       []entry
	head, tail int32    // newest and oldest entry, or none
	first      int64    // unix seconds of the first message observed
	dirty      bool     // changed since the last Dirty
	hour, day  []bucket // first-time counts, oldest first
}

func newAccount() *account {
	return &account{head: none, tail: none}
}

// smallTable: up to this many recipients an account has no hash index;
// ents is searched (384 bytes, faster than hashing) and most accounts,
// which write to few people, save the map.
const smallTable = 16

func (a *account) lookup(h uint64) (int32, bool) {
	if a.idx != nil {
		i, ok := a.idx[h]
		return i, ok
	}
	for i := range a.ents {
		if a.ents[i].h == h {
			return int32(i), true
		}
	}
	return 0, false
}

// index notes that ents[i] holds h; called after ents grew or moved.
func (a *account) index(h uint64, i int32) {
	if a.idx == nil {
		if len(a.ents) <= smallTable {
			return
		}
		a.idx = make(map[uint64]int32, len(a.ents))
		for j, e := range a.ents {
			a.idx[e.h] = int32(j)
		}
	}
	a.idx[h] = i
}

func (a *account) unindex(h uint64) {
	if a.idx != nil {
		delete(a.idx, h)
	}
}

func (a *account) unlink(i int32) {
	e := &a.ents[i]
	if e.newer != none {
		a.ents[e.newer].older = e.older
	} else {
		a.head = e.older
	}
	if e.older != none {
		a.ents[e.older].newer = e.newer
	} else {
		a.tail = e.newer
	}
	e.newer, e.older = none, none
}

func (a *account) pushHead(i int32) {
	e := &a.ents[i]
	e.older, e.newer = a.head, none
	if a.head != none {
		a.ents[a.head].newer = i
	} else {
		a.tail = i
	}
	a.head = i
}

// remove forgets entry i, moving the last entry into its place so ents
// stays dense.
func (a *account) remove(i int32) {
	a.unlink(i)
	a.unindex(a.ents[i].h)
	last := int32(len(a.ents) - 1)
	if i != last {
		a.ents[i] = a.ents[last]
		e := &a.ents[i]
		if e.newer != none {
			a.ents[e.newer].older = i
		} else {
			a.head = i
		}
		if e.older != none {
			a.ents[e.older].newer = i
		} else {
			a.tail = i
		}
		a.index(e.h, i)
	}
	a.ents = a.ents[:last]
}

// expire forgets recipients last seen at or before cutoff.
func (a *account) expire(cutoff int64) {
	for a.tail != none && a.ents[a.tail].seen <= cutoff {
		a.remove(a.tail)
	}
}

func (a *account) trim(max int) {
	for len(a.ents) > max {
		a.remove(a.tail)
	}
}

// touch records h at now and reports whether it was new.
func (a *account) touch(h uint64, now int64, max int) bool {
	// Out-of-order messages (clock skew, replays) are stamped with the
	// newest time seen so the list stays ordered.
	if a.head != none && a.ents[a.head].seen > now {
		now = a.ents[a.head].seen
	}
	if i, ok := a.lookup(h); ok {
		a.unlink(i)
		a.ents[i].seen = now
		a.pushHead(i)
		return false
	}
	if len(a.ents) >= max {
		a.remove(a.tail)
	}
	i := int32(len(a.ents))
	if len(a.ents) == cap(a.ents) {
		// A quarter more, not append's double: most tables stop growing
		// soon, and a million of them at half empty is a lot.
		extra := len(a.ents) / 4
		if extra < 2 {
			extra = 2
		}
		grown := make([]entry, len(a.ents), len(a.ents)+extra)
		copy(grown, a.ents)
		a.ents = grown
	}
	a.ents = append(a.ents, entry{h: h, seen: now, newer: none, older: none})
	a.index(h, i)
	a.pushHead(i)
	return true
}

// merge adds the restored account r into the live account a (mail sent
// since start, while a background restore ran): every recipient of both
// with its later time, the most recent max kept; first-time counts added;
// the earlier first message.
func (a *account) merge(r *account, max int) {
	seen := make(map[uint64]int64, len(a.ents)+len(r.ents))
	for _, e := range r.ents {
		seen[e.h] = e.seen
	}
	for _, e := range a.ents {
		if e.seen > seen[e.h] {
			seen[e.h] = e.seen
		}
	}
	ents := make([]entry, 0, len(seen))
	for h, at := range seen {
		ents = append(ents, entry{h: h, seen: at})
	}
	// Oldest first, so that pushing each to the head leaves the newest
	// at the head; ties by hash, for a deterministic order.
	slices.SortFunc(ents, func(x, y entry) int {
		if c := cmp.Compare(x.seen, y.seen); c != 0 {
			return c
		}
		return cmp.Compare(x.h, y.h)
	})
	if len(ents) > max {
		ents = ents[len(ents)-max:]
	}
	a.ents, a.idx, a.head, a.tail = make([]entry, 0, len(ents)), nil, none, none
	for i, e := range ents {
		a.ents = append(a.ents, entry{h: e.h, seen: e.seen, newer: none, older: none})
		a.index(e.h, int32(i))
		a.pushHead(int32(i))
	}
	a.hour = mergeBuckets(a.hour, r.hour)
	a.day = mergeBuckets(a.day, r.day)
	if r.first > 0 && (a.first == 0 || r.first < a.first) {
		a.first = r.first
	}
	a.dirty = true
}

// mergeBuckets adds the buckets of b into a, both ordered by slot.
func mergeBuckets(a, b []bucket) []bucket {
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
			out = append(out, bucket{a[i].slot, a[i].n + b[j].n})
			i++
			j++
		}
	}
	return out
}

// compact returns memory after a table shrank a lot.
func (a *account) compact() {
	if cap(a.ents) <= 64 || cap(a.ents) < 4*len(a.ents) {
		return
	}
	a.ents = slices.Clone(a.ents)
	a.idx = nil
	if len(a.ents) > smallTable {
		a.idx = make(map[uint64]int32, len(a.ents))
		for i, e := range a.ents {
			a.idx[e.h] = int32(i)
		}
	}
}

func add(bs []bucket, slot int64, n uint32) []bucket {
	// A message timestamped before the newest bucket lands in the newest
	// bucket rather than reordering, as in internal/counter.
	if k := len(bs); k > 0 && bs[k-1].slot >= slot {
		bs[k-1].n += n
		return bs
	}
	if len(bs) == cap(bs) {
		grown := make([]bucket, len(bs), len(bs)+max(2, len(bs)/4)) // a quarter more, as touch
		copy(grown, bs)
		bs = grown
	}
	return append(bs, bucket{slot, n})
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

func sum(bs []bucket, oldest int64) int {
	n := 0
	for i := len(bs) - 1; i >= 0 && bs[i].slot > oldest; i-- {
		n += int(bs[i].n)
	}
	return n
}

// windows fills the account fields of st at now. Walking from the newest
// entry stops at the first one older than a day, so it costs the
// account's distinct recipients of the last day, not its table.
func (a *account) windows(now int64, st *Stats) {
	st.FirstTime1h = sum(a.hour, now/hourSlot-hourSlots)
	st.FirstTime24h = sum(a.day, now/daySlot-daySlots)
	for i := a.head; i != none; i = a.ents[i].older {
		seen := a.ents[i].seen
		if seen <= now-day {
			break
		}
		st.Distinct24h++
		if seen > now-hour {
			st.Distinct1h++
		}
	}
	st.Known = len(a.ents)
	if a.first > 0 && now > a.first {
		st.Tracked = time.Duration(now-a.first) * time.Second
	}
}

type shard struct {
	mu       sync.Mutex
	accounts map[string]*account
}

// Tracker remembers, per account, which recipients it has mailed and when.
// It is safe for concurrent use.
type Tracker struct {
	lookback int64 // seconds
	max      int
	local    map[string]struct{}
	key      keyhash.Key
	keyID    uint64 // identifies key in snapshots without revealing it
	seed     maphash.Seed
	shards   [shards]shard
	since    atomic.Int64 // earliest first-seen of any account, unix seconds; 0: none
	gone     sync.Map     // accounts swept since the last Dirty
}

// New returns an empty Tracker.
func New(o Options) *Tracker {
	t := &Tracker{
		lookback: int64(o.Lookback / time.Second),
		max:      o.MaxPerAccount,
		local:    map[string]struct{}{},
		seed:     maphash.MakeSeed(),
	}
	if t.lookback <= 0 {
		t.lookback = int64(DefaultLookback / time.Second)
	}
	if t.max <= 0 {
		t.max = DefaultMaxPerAccount
	}
	for _, d := range o.LocalDomains {
		t.local[strings.ToLower(strings.TrimSpace(d))] = struct{}{}
	}
	var kb [16]byte
	if len(o.Key) > 0 {
		s := sha256.Sum256(o.Key)
		copy(kb[:], s[:])
	} else {
		rand.Read(kb[:]) // never fails (crypto/rand)
	}
	t.key = keyhash.New(kb)
	t.keyID = t.key.Sum([]byte("mailbrake novelty key id"))
	for i := range t.shards {
		t.shards[i].accounts = map[string]*account{}
	}
	return t
}

func (t *Tracker) shard(account string) *shard {
	return &t.shards[maphash.String(t.seed, account)%shards]
}

// rcpt is one recipient of a message, hashed.
type rcpt struct {
	h, dh uint64 // address and domain hashes
	local bool
}

// lower returns s lower-cased in buf when s is short ASCII, else a new
// slice.
func lower(buf []byte, s string) []byte {
	if len(s) > len(buf) {
		return []byte(strings.ToLower(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 {
			return []byte(strings.ToLower(s))
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return buf[:len(s)]
}

// hashRecipients hashes rs into out, sorted by address hash, one entry per
// distinct address. Empty addresses are skipped.
func (t *Tracker) hashRecipients(rs []string, out []rcpt) []rcpt {
	var buf [256]byte
	for _, r := range rs {
		r = strings.TrimSpace(r)
		r = strings.TrimSuffix(strings.TrimPrefix(r, "<"), ">")
		if r == "" {
			continue
		}
		b := lower(buf[:], r)
		var x rcpt
		x.h = t.key.Sum(b)
		// A bare local part (no @) is delivered locally by Postfix.
		dom := b[:0]
		if at := bytes.LastIndexByte(b, '@'); at >= 0 {
			dom = b[at+1:]
			_, x.local = t.local[string(dom)]
		} else {
			x.local = true
		}
		x.dh = t.key.Sum(dom)
		out = append(out, x)
	}
	slices.SortFunc(out, func(a, b rcpt) int {
		switch {
		case a.h < b.h:
			return -1
		case a.h > b.h:
			return 1
		}
		return 0
	})
	return slices.CompactFunc(out, func(a, b rcpt) bool { return a.h == b.h })
}

// message fills the message fields of st from rs (hashed, sorted,
// distinct) and returns the hash of the account's own domain, which
// first-time recipients there are not external to (ownOK: only without
// LocalDomains).
func (t *Tracker) message(account string, rs []rcpt, st *Stats) (own uint64, ownOK bool) {
	st.Distinct = len(rs)
	var doms [16]uint64
	ds := doms[:0]
	for _, r := range rs {
		if !r.local {
			st.External++
		}
		ds = append(ds, r.dh)
	}
	slices.Sort(ds)
	st.Domains = len(slices.Compact(ds))
	if i := strings.LastIndexByte(account, '@'); len(t.local) == 0 && i >= 0 {
		var buf [256]byte
		own, ownOK = t.key.Sum(lower(buf[:], account[i+1:])), true
	}
	return own, ownOK
}

// Recipient is one distinct recipient of a prepared message: its keyed
// hash, and whether it counts as external when it is first-time.
type Recipient struct {
	Hash     uint64
	External bool
}

// Prepare hashes a message's recipients as Observe does, for a memory kept
// elsewhere (internal/novelty/redisnovelty): the message fields of Stats,
// and the distinct recipients in the order Observe records them. The
// tracker itself is not changed.
func (t *Tracker) Prepare(account string, recipients []string) (Stats, []Recipient) {
	rs := t.hashRecipients(recipients, nil)
	var st Stats
	own, ownOK := t.message(account, rs, &st)
	out := make([]Recipient, len(rs))
	for i, r := range rs {
		out[i] = Recipient{Hash: r.h, External: !r.local && (!ownOK || r.dh != own)}
	}
	return st, out
}

// KeyID identifies the tracker's key without revealing it: nodes sharing
// a memory must hash under the same key.
func (t *Tracker) KeyID() uint64 { return t.keyID }

// Lookback returns how long a recipient stays known.
func (t *Tracker) Lookback() time.Duration { return time.Duration(t.lookback) * time.Second }

// MaxPerAccount returns how many recipients an account keeps at most.
func (t *Tracker) MaxPerAccount() int { return t.max }

// Observe records one message from account to recipients at at, and
// returns the message's novelty and the account's windows including it.
func (t *Tracker) Observe(account string, recipients []string, at time.Time) Stats {
	var arr [16]rcpt
	rs := t.hashRecipients(recipients, arr[:0])
	var st Stats
	own, ownOK := t.message(account, rs, &st)
	now := at.Unix()
	s := t.shard(account)
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[account]
	if a == nil {
		a = newAccount()
		a.first = now
		s.accounts[account] = a
		t.noteSince(now)
	}
	a.dirty = true
	a.expire(now - t.lookback)
	for _, r := range rs {
		if a.touch(r.h, now, t.max) {
			st.New++
			if !r.local && (!ownOK || r.dh != own) {
				st.NewExternal++
			}
		}
	}
	a.hour = prune(a.hour, now/hourSlot-hourSlots)
	a.day = prune(a.day, now/daySlot-daySlots)
	if st.New > 0 {
		a.hour = add(a.hour, now/hourSlot, uint32(st.New))
		a.day = add(a.day, now/daySlot, uint32(st.New))
	}
	a.windows(now, &st)
	return st
}

// Peek returns the account's windows at at without recording a message.
func (t *Tracker) Peek(account string, at time.Time) Stats {
	now := at.Unix()
	s := t.shard(account)
	s.mu.Lock()
	defer s.mu.Unlock()
	var st Stats
	a := s.accounts[account]
	if a == nil {
		return st
	}
	a.expire(now - t.lookback)
	a.windows(now, &st)
	return st
}

// Sweep forgets recipients older than the lookback and accounts with
// nothing left, and returns how many accounts remain.
func (t *Tracker) Sweep(at time.Time) int {
	return t.Forget(at, 0)
}

// Forget is Sweep that also forgets every account that mailed nobody
// within idle (0: only the lookback counts): memory for accounts that
// stopped sending, bounded by the site's choice
// (engine.forget_idle_after). It returns how many accounts remain; their
// stored snapshots are deleted at the next Dirty.
func (t *Tracker) Forget(at time.Time, idle time.Duration) int {
	now := at.Unix()
	cut := now - t.lookback
	if s := int64(idle / time.Second); s > 0 && now-s > cut {
		cut = now - s
	}
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for name, a := range s.accounts {
			if a.head != none && a.ents[a.head].seen <= cut {
				a.ents, a.idx, a.head, a.tail = nil, nil, none, none
			}
			a.expire(now - t.lookback)
			a.hour = prune(a.hour, now/hourSlot-hourSlots)
			a.day = prune(a.day, now/daySlot-daySlots)
			if len(a.ents) == 0 && len(a.hour) == 0 && len(a.day) == 0 {
				delete(s.accounts, name)
				t.gone.Store(name, struct{}{})
				continue
			}
			a.compact()
		}
		n += len(s.accounts)
		s.mu.Unlock()
	}
	return n
}

// noteSince lowers the tracker's earliest first-seen time to first.
func (t *Tracker) noteSince(first int64) {
	for {
		cur := t.since.Load()
		if (cur != 0 && cur <= first) || first <= 0 || t.since.CompareAndSwap(cur, first) {
			return
		}
	}
}

// Since returns when the tracker first saw any account that it still
// remembers (restored snapshots included), or the zero time. A caller can
// treat a tracker that has been learning only briefly (a new installation)
// differently from one that knows every account's correspondents.
func (t *Tracker) Since() time.Time {
	if s := t.since.Load(); s != 0 {
		return time.Unix(s, 0).UTC()
	}
	return time.Time{}
}

// Dirty returns an encoded snapshot of every account changed since the
// last call (nil value: the account was forgotten and its snapshot can be
// deleted), and marks them clean.
func (t *Tracker) Dirty() map[string][]byte {
	out := map[string][]byte{}
	for i := range t.shards {
		t.dirtyShard(i, out)
	}
	return out
}

// DirtyParts is how many parts DirtyPart splits Dirty into.
func (t *Tracker) DirtyParts() int { return shards }

// DirtyPart is Dirty for one shard of the accounts (part 0 also carries
// the accounts forgotten since the last call).
func (t *Tracker) DirtyPart(i int) map[string][]byte {
	out := map[string][]byte{}
	t.dirtyShard(i, out)
	return out
}

func (t *Tracker) dirtyShard(i int, out map[string][]byte) {
	if i == 0 {
		t.gone.Range(func(k, _ any) bool {
			out[k.(string)] = nil
			t.gone.Delete(k)
			return true
		})
	}
	s := &t.shards[i]
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, a := range s.accounts {
		if a.dirty {
			out[name] = encode(t.keyID, a)
			a.dirty = false
		}
	}
}

// Snapshot returns every account encoded. Snapshots hold hashes, never
// addresses, and restore only into a Tracker with the same Key.
func (t *Tracker) Snapshot() map[string][]byte {
	out := map[string][]byte{}
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for name, a := range s.accounts {
			out[name] = encode(t.keyID, a)
		}
		s.mu.Unlock()
	}
	return out
}

// ErrKeyMismatch reports snapshots taken under another Key.
var ErrKeyMismatch = errors.New("novelty: snapshot taken with another key")

// Restore loads snapshots produced by Snapshot, replacing those accounts.
// Undecodable entries and entries taken under another key are skipped and
// reported in the returned error; the others are loaded.
func (t *Tracker) Restore(snaps map[string][]byte) error {
	bad, foreign := 0, 0
	for name, b := range snaps {
		id, a, err := decode(b)
		if err != nil {
			bad++
			continue
		}
		if id != t.keyID {
			foreign++
			continue
		}
		a.trim(t.max)
		t.noteSince(a.first)
		s := t.shard(name)
		s.mu.Lock()
		if live := s.accounts[name]; live != nil {
			live.merge(a, t.max)
		} else {
			s.accounts[name] = a
		}
		s.mu.Unlock()
	}
	var errs []error
	if bad > 0 {
		errs = append(errs, fmt.Errorf("skipped %d undecodable snapshots: %w", bad, errSnapshot))
	}
	if foreign > 0 {
		errs = append(errs, fmt.Errorf("skipped %d snapshots: %w", foreign, ErrKeyMismatch))
	}
	return errors.Join(errs...)
}

const snapVersion = 1

// encode writes: version, key id (8 bytes), first-seen time (varint), entry count, entries oldest
// first (hash as 8 bytes, last-seen as a varint then as increasing uvarint
// deltas), then the hour and day buckets as in internal/counter.
func encode(keyID uint64, a *account) []byte {
	b := make([]byte, 0, 16+len(a.ents)*11+(len(a.hour)+len(a.day))*8)
	b = append(b, snapVersion)
	b = binary.LittleEndian.AppendUint64(b, keyID)
	b = binary.AppendVarint(b, a.first)
	b = binary.AppendUvarint(b, uint64(len(a.ents)))
	var prev int64
	for i := a.tail; i != none; i = a.ents[i].newer {
		e := a.ents[i]
		b = binary.LittleEndian.AppendUint64(b, e.h)
		if i == a.tail {
			b = binary.AppendVarint(b, e.seen)
		} else {
			b = binary.AppendUvarint(b, uint64(e.seen-prev))
		}
		prev = e.seen
	}
	for _, bs := range [][]bucket{a.hour, a.day} {
		b = binary.AppendUvarint(b, uint64(len(bs)))
		for _, x := range bs {
			b = binary.AppendVarint(b, x.slot)
			b = binary.AppendUvarint(b, uint64(x.n))
		}
	}
	return b
}

var errSnapshot = errors.New("novelty: bad snapshot")

func decode(b []byte) (uint64, *account, error) {
	if len(b) < 9 || b[0] != snapVersion {
		return 0, nil, errSnapshot
	}
	keyID := binary.LittleEndian.Uint64(b[1:9])
	b = b[9:]
	uv := func() (uint64, bool) {
		v, k := binary.Uvarint(b)
		if k <= 0 {
			return 0, false
		}
		b = b[k:]
		return v, true
	}
	v := func() (int64, bool) {
		x, k := binary.Varint(b)
		if k <= 0 {
			return 0, false
		}
		b = b[k:]
		return x, true
	}
	first, ok := v()
	if !ok {
		return 0, nil, errSnapshot
	}
	n, ok := uv()
	// Each entry takes at least 9 bytes: bound the allocation by the input.
	if !ok || n > uint64(len(b)/9) {
		return 0, nil, errSnapshot
	}
	a := newAccount()
	a.first = first
	a.ents = make([]entry, 0, n)
	var seen int64
	for i := range int32(n) {
		if len(b) < 8 {
			return 0, nil, errSnapshot
		}
		h := binary.LittleEndian.Uint64(b)
		b = b[8:]
		if i == 0 {
			if seen, ok = v(); !ok {
				return 0, nil, errSnapshot
			}
		} else {
			d, ok := uv()
			if !ok || d > uint64(1<<62) || seen+int64(d) < seen {
				return 0, nil, errSnapshot
			}
			seen += int64(d)
		}
		if _, dup := a.lookup(h); dup {
			return 0, nil, errSnapshot
		}
		a.ents = append(a.ents, entry{h: h, seen: seen, newer: none, older: none})
		a.index(h, i)
		a.pushHead(i)
	}
	readBuckets := func(max uint64) ([]bucket, bool) {
		n, ok := uv()
		if !ok || n > max {
			return nil, false
		}
		var out []bucket
		for range n {
			slot, ok1 := v()
			c, ok2 := uv()
			if !ok1 || !ok2 || c > 1<<32-1 {
				return nil, false
			}
			if len(out) > 0 && slot <= out[len(out)-1].slot {
				return nil, false
			}
			out = append(out, bucket{slot, uint32(c)})
		}
		return out, true
	}
	if a.hour, ok = readBuckets(hourSlots + 1); !ok {
		return 0, nil, errSnapshot
	}
	if a.day, ok = readBuckets(daySlots + 1); !ok {
		return 0, nil, errSnapshot
	}
	if len(b) != 0 {
		return 0, nil, errSnapshot
	}
	return keyID, a, nil
}
