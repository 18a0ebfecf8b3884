package origin

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/mailbrake/mailbrake/internal/keyhash"
)

const snapVersion = 1

var errSnapshot = errors.New("origin: some snapshots were unreadable or taken under another key and were skipped")

// Dirty returns a snapshot of every account changed since the last call
// (its prefixes; the site's addresses of the last day are not kept), and
// marks them clean.
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
		b := keyhash.AppendHeader(nil, snapVersion, t.keyID)
		b = binary.AppendUvarint(b, uint64(len(a.prefixes)))
		for _, p := range a.prefixes {
			b = binary.LittleEndian.AppendUint64(b, p.h)
			b = binary.AppendVarint(b, p.last)
		}
		out[name] = b
	}
	return out
}

// Restore loads snapshots made by Dirty under the same key.
func (t *Tracker) Restore(snaps map[string][]byte) error {
	bad := 0
	t.mu.Lock()
	defer t.mu.Unlock()
	for name, b := range snaps {
		ps, err := t.decode(b)
		if err != nil {
			bad++
			continue
		}
		live := t.acc[name]
		if live == nil {
			t.acc[name] = &acct{prefixes: ps}
			continue
		}
		// Used since start (a background restore): those stand with
		// their times; restored prefixes fill in up to the bound.
		for _, p := range ps {
			if i := slices.IndexFunc(live.prefixes, func(x prefixSeen) bool { return x.h == p.h }); i >= 0 {
				live.prefixes[i].last = max(live.prefixes[i].last, p.last)
			} else if len(live.prefixes) < t.o.MaxPerAccount {
				live.prefixes = append(live.prefixes, p)
			}
		}
		live.dirty = true
	}
	if bad > 0 {
		return fmt.Errorf("%w (%d)", errSnapshot, bad)
	}
	return nil
}

func (t *Tracker) decode(b []byte) ([]prefixSeen, error) {
	b, err := keyhash.CutHeader(b, snapVersion, t.keyID)
	if err != nil {
		return nil, err
	}
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(t.o.MaxPerAccount) {
		return nil, errors.New("bad count")
	}
	b = b[k:]
	ps := make([]prefixSeen, 0, n)
	for range n {
		if len(b) < 8 {
			return nil, errors.New("truncated")
		}
		h := binary.LittleEndian.Uint64(b)
		last, m := binary.Varint(b[8:])
		if m <= 0 {
			return nil, errors.New("bad time")
		}
		b = b[8+m:]
		ps = append(ps, prefixSeen{h: h, last: last})
	}
	if len(b) != 0 {
		return nil, errors.New("trailing bytes")
	}
	return ps, nil
}
