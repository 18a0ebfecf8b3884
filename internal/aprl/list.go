package aprl

import "time"

// List is an immutable snapshot of listed addresses. Its methods are safe
// for concurrent use; a nil *List is empty.
type List struct {
	m       map[string]Entry
	removed int // merged entries dropped because they were cleared
}

// Build merges entries into a List and drops cleared addresses.
//
// Duplicates of an address (the format allows one line per address, but
// several files may list it) merge into one Entry: the union of the types,
// the latest LastSeen, and the Source and Line of the entry seen latest.
// An address is then dropped when cleared holds a date on or after its
// LastSeen: add-address-to-list.pl removes "addresses that have a cleared
// date that is more recent than the listing date", and an account secured
// the day it was last seen is taken as cleared. Entries whose address does
// not normalise or whose Types is not a valid set are ignored.
func Build(entries []Entry, cleared map[string]time.Time) *List {
	m := make(map[string]Entry, len(entries))
	for _, e := range entries {
		addr, ok := normalize(e.Address)
		if !ok || !e.Types.valid() {
			continue
		}
		e.Address = addr
		if prev, dup := m[addr]; dup {
			types := prev.Types | e.Types
			if !e.LastSeen.After(prev.LastSeen) {
				e = prev
			}
			e.Types = types
		}
		m[addr] = e
	}
	l := &List{m: m}
	for addr, d := range cleared {
		addr, ok := normalize(addr)
		if !ok {
			continue
		}
		if e, listed := m[addr]; listed && !d.Before(e.LastSeen) {
			delete(m, addr)
			l.removed++
		}
	}
	return l
}

// Lookup returns the entry for addr. The address is normalised first
// (surrounding spaces and angle brackets removed, lower-cased); a lookup of
// an already normalised address does not allocate.
func (l *List) Lookup(addr string) (Entry, bool) {
	if l == nil {
		return Entry{}, false
	}
	key, ok := normalize(addr)
	if !ok {
		return Entry{}, false
	}
	e, ok := l.m[key]
	return e, ok
}

// Len returns the number of listed addresses.
func (l *List) Len() int {
	if l == nil {
		return 0
	}
	return len(l.m)
}
