package campaign

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/mailbrake/mailbrake/internal/keyhash"
)

// snapVersion is the first byte of an account's snapshot.
const snapVersion = 1

// errSnapshot reports snapshots that could not be restored (corrupt, or
// taken under another key); the rest are restored.
var errSnapshot = errors.New("campaign: some snapshots were unreadable or taken under another key and were skipped")

// Dirty returns a snapshot of every account changed since the last call,
// by account, and marks them clean.
func (t *Tracker) Dirty() map[string][]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string][]byte{}
	for name := range t.gone {
		if _, back := t.acc[name]; !back {
			out[name] = nil // forgotten: the stored snapshot goes too
		}
	}
	t.gone = nil
	for name, a := range t.acc {
		if !a.dirty {
			continue
		}
		a.dirty = false
		out[name] = t.encode(a)
	}
	return out
}

// Restore loads snapshots made by Dirty (under the same key).
func (t *Tracker) Restore(snaps map[string][]byte) error {
	bad := 0
	t.mu.Lock()
	defer t.mu.Unlock()
	for name, b := range snaps {
		runs, trusted, err := t.decode(b)
		if err != nil {
			bad++
			continue
		}
		live := t.acc[name]
		if live == nil {
			t.acc[name] = &acct{name: name, runs: runs, trusted: trusted}
			continue
		}
		// Sent since start (a background restore): the runs seen
		// since stand; restored runs and trust fill in the rest.
		for k, r := range runs {
			if _, ok := live.runs[k]; !ok {
				if live.runs == nil {
					live.runs = map[uint64]*run{}
				}
				live.runs[k] = r
			}
		}
		for k, until := range trusted {
			if live.trusted == nil {
				live.trusted = map[uint64]int64{}
			}
			live.trusted[k] = max(live.trusted[k], until)
		}
		live.dirty = true
	}
	if bad > 0 {
		return fmt.Errorf("%w (%d)", errSnapshot, bad)
	}
	return nil
}

func (t *Tracker) encode(a *acct) []byte {
	// A run may have several keys (a spun run's shingle bands): each run
	// once, with its keys.
	keysOf := map[*run][]uint64{}
	var order []*run
	for k, r := range a.runs {
		if _, ok := keysOf[r]; !ok {
			order = append(order, r)
		}
		keysOf[r] = append(keysOf[r], k)
	}
	b := keyhash.AppendHeader(nil, snapVersion, t.keyID)
	b = binary.AppendUvarint(b, uint64(len(order)))
	for _, r := range order {
		b = binary.AppendUvarint(b, uint64(len(keysOf[r])))
		for _, k := range keysOf[r] {
			b = binary.LittleEndian.AppendUint64(b, k)
		}
		b = binary.AppendVarint(b, r.last)
		b = binary.AppendUvarint(b, uint64(len(r.hours)))
		for _, w := range r.hours {
			b = binary.AppendUvarint(b, uint64(w.hour))
			b = binary.AppendUvarint(b, uint64(w.msgs))
			b = binary.AppendUvarint(b, uint64(w.new))
			b = binary.AppendUvarint(b, uint64(w.ext))
		}
	}
	b = binary.AppendUvarint(b, uint64(len(a.trusted)))
	for k, until := range a.trusted {
		b = binary.LittleEndian.AppendUint64(b, k)
		b = binary.AppendVarint(b, until)
	}
	return b
}

// decode reads one account's snapshot, refusing another key's and any
// inconsistency (counts beyond the bounds, trailing bytes).
func (t *Tracker) decode(b []byte) (map[uint64]*run, map[uint64]int64, error) {
	b, err := keyhash.CutHeader(b, snapVersion, t.keyID)
	if err != nil {
		return nil, nil, err
	}
	uv := func(limit uint64) (uint64, error) {
		v, n := binary.Uvarint(b)
		if n <= 0 || v > limit {
			return 0, errors.New("bad number")
		}
		b = b[n:]
		return v, nil
	}
	n, err := uv(uint64(t.o.MaxPerAccount))
	if err != nil {
		return nil, nil, err
	}
	runs := make(map[uint64]*run, n)
	for range n {
		nk, err := uv(uint64(t.o.MaxPerAccount))
		if err != nil || nk == 0 {
			return nil, nil, errors.New("bad key count")
		}
		if uint64(len(b)) < 8*nk {
			return nil, nil, errors.New("truncated")
		}
		keys := make([]uint64, nk)
		for i := range keys {
			keys[i] = binary.LittleEndian.Uint64(b)
			b = b[8:]
		}
		if len(runs)+len(keys) > t.o.MaxPerAccount {
			return nil, nil, errors.New("more keys than the bound")
		}
		last, m := binary.Varint(b)
		if m <= 0 {
			return nil, nil, errors.New("bad time")
		}
		b = b[m:]
		nh, err := uv(week)
		if err != nil {
			return nil, nil, err
		}
		r := &run{last: last, hours: make([]window, 0, nh)}
		for range nh {
			var v [4]uint64
			for i, lim := range [4]uint64{1<<32 - 1, 0xffff, 0xffff, 0xffff} {
				if v[i], err = uv(lim); err != nil {
					return nil, nil, err
				}
			}
			if len(r.hours) > 0 && uint32(v[0]) <= r.hours[len(r.hours)-1].hour {
				return nil, nil, errors.New("hours out of order")
			}
			r.hours = append(r.hours, window{hour: uint32(v[0]), msgs: uint16(v[1]), new: uint16(v[2]), ext: uint16(v[3])})
		}
		for _, k := range keys {
			runs[k] = r
		}
	}
	nt, err := uv(maxTrusted)
	if err != nil {
		return nil, nil, err
	}
	var trusted map[uint64]int64
	for range nt {
		if len(b) < 8 {
			return nil, nil, errors.New("truncated")
		}
		k := binary.LittleEndian.Uint64(b)
		b = b[8:]
		until, m := binary.Varint(b)
		if m <= 0 {
			return nil, nil, errors.New("bad time")
		}
		b = b[m:]
		if trusted == nil {
			trusted = map[uint64]int64{}
		}
		trusted[k] = until
	}
	if len(b) != 0 {
		return nil, nil, errors.New("trailing bytes")
	}
	return runs, trusted, nil
}

// SpamDirty returns the spam marks changed since the last call, by print
// (hex): the time marked, or an empty value for a mark forgotten.
func (t *Tracker) SpamDirty() map[string][]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string][]byte{}
	for k := range t.spamDirty {
		name := strconv.FormatUint(k, 16)
		if at, ok := t.spam[k]; ok {
			b := keyhash.AppendHeader(nil, snapVersion, t.keyID)
			out[name] = binary.AppendVarint(b, at)
		} else {
			out[name] = nil
		}
	}
	clear(t.spamDirty)
	return out
}

// RestoreSpam loads spam marks saved by SpamDirty (under the same key).
func (t *Tracker) RestoreSpam(snaps map[string][]byte) error {
	bad := 0
	t.mu.Lock()
	defer t.mu.Unlock()
	for name, b := range snaps {
		k, err := strconv.ParseUint(name, 16, 64)
		if err == nil {
			b, err = keyhash.CutHeader(b, snapVersion, t.keyID)
		}
		if err != nil {
			bad++
			continue
		}
		at, n := binary.Varint(b)
		if n <= 0 || n != len(b) {
			bad++
			continue
		}
		if cur, ok := t.spam[k]; ok {
			t.spam[k] = max(cur, at)
		} else if len(t.spam) < maxSpam {
			t.spam[k] = at
		}
	}
	if bad > 0 {
		return fmt.Errorf("%w (%d spam marks)", errSnapshot, bad)
	}
	return nil
}

// HostsDirty returns the site's link hosts as one snapshot ("hosts") when
// they changed since the last call.
func (t *Tracker) HostsDirty() map[string][]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.hostsDirty {
		return nil
	}
	t.hostsDirty = false
	b := keyhash.AppendHeader(nil, snapVersion, t.keyID)
	b = binary.AppendUvarint(b, uint64(len(t.hosts)))
	for h, e := range t.hosts {
		b = binary.LittleEndian.AppendUint64(b, h)
		b = binary.AppendVarint(b, e.first)
		b = binary.AppendVarint(b, e.last)
		b = binary.AppendUvarint(b, uint64(e.newRcpts))
	}
	return map[string][]byte{"hosts": b}
}

// RestoreHosts loads what HostsDirty saved (under the same key).
func (t *Tracker) RestoreHosts(snaps map[string][]byte) error {
	b, ok := snaps["hosts"]
	if !ok {
		return nil
	}
	hosts, err := t.decodeHosts(b)
	if err != nil {
		return fmt.Errorf("%w (link hosts: %v)", errSnapshot, err)
	}
	t.mu.Lock()
	// Hosts seen since start (a background restore) stand; the
	// restored ones fill in the rest, up to the bound.
	for h, hs := range hosts {
		if _, ok := t.hosts[h]; !ok && len(t.hosts) < maxHosts {
			t.hosts[h] = hs
		}
	}
	t.mu.Unlock()
	return nil
}

func (t *Tracker) decodeHosts(b []byte) (map[uint64]*hostSeen, error) {
	b, err := keyhash.CutHeader(b, snapVersion, t.keyID)
	if err != nil {
		return nil, err
	}
	n, k := binary.Uvarint(b)
	if k <= 0 || n > maxHosts {
		return nil, errors.New("bad count")
	}
	b = b[k:]
	hosts := make(map[uint64]*hostSeen, n)
	for range n {
		if len(b) < 8 {
			return nil, errors.New("truncated")
		}
		h := binary.LittleEndian.Uint64(b)
		b = b[8:]
		var e hostSeen
		var m int
		if e.first, m = binary.Varint(b); m <= 0 {
			return nil, errors.New("bad time")
		}
		b = b[m:]
		if e.last, m = binary.Varint(b); m <= 0 {
			return nil, errors.New("bad time")
		}
		b = b[m:]
		v, m := binary.Uvarint(b)
		if m <= 0 || v > 1<<32-1 {
			return nil, errors.New("bad count")
		}
		b = b[m:]
		e.newRcpts = uint32(v)
		hosts[h] = &e
	}
	if len(b) != 0 {
		return nil, errors.New("trailing bytes")
	}
	return hosts, nil
}
