package baseline

import (
	"encoding/binary"
	"errors"

	"github.com/mailbrake/mailbrake/internal/fingerprint"
)

// snapVersion 2 adds the reviewed burst; version 1 snapshots are read.
const snapVersion = 2

var errSnapshot = errors.New("baseline: bad snapshot")

// Dirty returns an encoded snapshot of every account changed since the
// last call, and marks them clean; the daemon stores them so the learned
// normal survives a restart.
func (d *Detector) Dirty() map[string][]byte {
	out := map[string][]byte{}
	for i := range d.shards {
		sh := &d.shards[i]
		sh.mu.Lock()
		for name, a := range sh.m {
			if a.dirty {
				a.dirty = false
				out[name] = encode(a)
			}
		}
		sh.mu.Unlock()
	}
	return out
}

// Restore loads snapshots from Dirty; undecodable ones are skipped and
// reported.
func (d *Detector) Restore(snaps map[string][]byte) error {
	bad := 0
	for name, b := range snaps {
		a, err := decode(b, d.o.Days)
		if err != nil {
			bad++
			continue
		}
		sh := d.shard(name)
		sh.mu.Lock()
		sh.m[name] = a
		sh.mu.Unlock()
	}
	if bad > 0 {
		return errSnapshot
	}
	return nil
}

func encode(a *account) []byte {
	b := []byte{snapVersion}
	b = binary.AppendVarint(b, int64(a.first))
	n := 0
	for _, s := range a.days {
		if s.num >= 0 {
			n++
		}
	}
	b = binary.AppendUvarint(b, uint64(n))
	for _, s := range a.days {
		if s.num < 0 {
			continue
		}
		b = binary.AppendVarint(b, int64(s.num))
		for _, v := range []uint32{s.rcpts, s.msgs, s.peakHour, s.hourRcpt} {
			b = binary.AppendUvarint(b, uint64(v))
		}
		b = binary.AppendVarint(b, int64(s.curHour))
	}
	b = binary.AppendUvarint(b, uint64(len(a.families)))
	for _, f := range a.families {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	b = binary.AppendVarint(b, int64(a.reviewedUntil))
	b = binary.AppendUvarint(b, uint64(a.reviewedHour))
	b = binary.AppendUvarint(b, uint64(a.reviewedDay))
	return b
}

func decode(b []byte, days int) (*account, error) {
	if len(b) < 1 || b[0] != 1 && b[0] != snapVersion {
		return nil, errSnapshot
	}
	version := b[0]
	b = b[1:]
	varint := func() (int64, bool) {
		v, k := binary.Varint(b)
		if k <= 0 {
			return 0, false
		}
		b = b[k:]
		return v, true
	}
	uvarint := func(max uint64) (uint64, bool) {
		v, k := binary.Uvarint(b)
		if k <= 0 || v > max {
			return 0, false
		}
		b = b[k:]
		return v, true
	}
	a := &account{days: make([]day, days)}
	for i := range a.days {
		a.days[i].num = -1
	}
	first, ok := varint()
	if !ok {
		return nil, errSnapshot
	}
	a.first = int32(first)
	n, ok := uvarint(400)
	if !ok {
		return nil, errSnapshot
	}
	for i := uint64(0); i < n; i++ {
		num, ok := varint()
		if !ok || num < 0 || num > 1<<30 {
			return nil, errSnapshot
		}
		var vals [4]uint32
		for j := range vals {
			v, ok := uvarint(1 << 32)
			if !ok {
				return nil, errSnapshot
			}
			vals[j] = uint32(v)
		}
		ch, ok := varint()
		if !ok || ch < -1 || ch > 23 {
			return nil, errSnapshot
		}
		s := &a.days[int(num)%days]
		if s.num < int32(num) { // with fewer days configured, keep the newest
			*s = day{num: int32(num), rcpts: vals[0], msgs: vals[1], peakHour: vals[2], hourRcpt: vals[3], curHour: int32(ch)}
		}
	}
	nf, ok := uvarint(16)
	if !ok {
		return nil, errSnapshot
	}
	for i := uint64(0); i < nf; i++ {
		l, ok := uvarint(64)
		if !ok || uint64(len(b)) < l {
			return nil, errSnapshot
		}
		a.families = append(a.families, fingerprint.Family(b[:l]))
		b = b[l:]
	}
	if version >= 2 {
		until, ok := varint()
		if !ok || until < 0 || until > 1<<30 {
			return nil, errSnapshot
		}
		hour, ok1 := uvarint(1 << 32)
		dayR, ok2 := uvarint(1 << 32)
		if !ok1 || !ok2 {
			return nil, errSnapshot
		}
		a.reviewedUntil, a.reviewedHour, a.reviewedDay = int32(until), uint32(hour), uint32(dayR)
	}
	if len(b) != 0 {
		return nil, errSnapshot
	}
	return a, nil
}
