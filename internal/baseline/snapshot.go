package baseline

import (
	"cmp"
	"encoding/binary"
	"errors"
	"slices"

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
		d.dirtyShard(i, out)
	}
	return out
}

// DirtyParts is how many parts DirtyPart splits Dirty into.
func (d *Detector) DirtyParts() int { return len(d.shards) }

// DirtyPart is Dirty for one shard of the accounts.
func (d *Detector) DirtyPart(i int) map[string][]byte {
	out := map[string][]byte{}
	d.dirtyShard(i, out)
	return out
}

func (d *Detector) dirtyShard(i int, out map[string][]byte) {
	sh := &d.shards[i]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for name := range sh.gone {
		if _, back := sh.m[name]; !back {
			out[name] = nil // forgotten: the stored snapshot goes too
		}
	}
	sh.gone = nil
	for name, a := range sh.m {
		if a.dirty {
			a.dirty = false
			out[name] = encode(a)
		}
	}
}

// Restore loads snapshots from Dirty; undecodable ones are skipped and
// reported. An account that mailed since the detector was created (the
// daemon restores in the background while it decides) keeps what it
// learned since and adds the restored history.
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
		if live := sh.m[name]; live != nil {
			live.merge(a, d.o.Days)
		} else {
			sh.m[name] = a
		}
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
	b = binary.AppendUvarint(b, uint64(len(a.days)))
	for _, s := range a.days {
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
	a := &account{}
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
		a.days = append(a.days, day{num: int32(num), rcpts: vals[0], msgs: vals[1], peakHour: vals[2], hourRcpt: vals[3], curHour: int32(ch)})
	}
	// Snapshots before version 3 wrote a ring in slot order: order by day,
	// one entry a day, and keep the newest days of the history (fewer may
	// be configured now).
	slices.SortStableFunc(a.days, func(x, y day) int { return cmp.Compare(x.num, y.num) })
	a.days = slices.CompactFunc(a.days, func(x, y day) bool { return x.num == y.num })
	if k := len(a.days); k > 0 {
		cut := a.days[k-1].num - int32(days)
		i := 0
		for i < k && a.days[i].num <= cut {
			i++
		}
		a.days = slices.Clip(a.days[i:])
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

// merge adds the restored account r into the live account a: days summed
// (a day's peak hour is the larger of the two, or their sum when both
// counted the same hour), the earlier first day, the families of both, the
// longer review.
func (a *account) merge(r *account, keep int) {
	for _, rd := range r.days {
		d := a.slot(rd.num, keep) // a day out of the history: not kept
		sameHour := d.curHour == rd.curHour && d.curHour >= 0
		d.rcpts += rd.rcpts
		d.msgs += rd.msgs
		if sameHour {
			d.hourRcpt += rd.hourRcpt
			d.peakHour = max(d.peakHour, rd.peakHour, d.hourRcpt)
		} else {
			d.peakHour = max(d.peakHour, rd.peakHour)
			if d.curHour < rd.curHour {
				d.curHour, d.hourRcpt = rd.curHour, rd.hourRcpt
			}
		}
	}
	a.first = min(a.first, r.first)
	for _, f := range r.families {
		if !slices.Contains(a.families, f) && len(a.families) < 16 {
			a.families = append(a.families, f)
		}
	}
	if r.reviewedUntil > a.reviewedUntil {
		a.reviewedUntil = r.reviewedUntil
	}
	a.reviewedHour = max(a.reviewedHour, r.reviewedHour)
	a.reviewedDay = max(a.reviewedDay, r.reviewedDay)
	a.dirty = true
}
