// Package origin remembers where each account's mail comes from: the
// address that submitted it (the SASL client, or the X-Originating-IP the
// Zimbra relay added for its web clients). Per account it keeps the
// prefixes (/24 for IPv4, /48 for IPv6) it used within the lookback; per
// site, which accounts each address submitted for within the last day, and
// for which of them it was new. A phishing kit's server working through
// the accounts it phished is one address that is new to every one of them.
// Only keyed hashes are kept.
package origin

import (
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/mailbrake/mailbrake/internal/keyhash"
)

// Options configures a Tracker.
type Options struct {
	Key []byte // 32 bytes, the novelty key (domain-separated here)
	// Lookback: a prefix not used for this long is new again. Default 90 days.
	Lookback time.Duration
	// MaxPerAccount bounds the prefixes remembered per account (the least
	// recently used forgotten first). Default 64.
	MaxPerAccount int
	// MaxSite bounds the addresses remembered for the site. Default 100,000.
	MaxSite int
}

// Stats is what the Tracker knows after a message.
type Stats struct {
	// NewPrefix: the account never used the origin's prefix within the
	// lookback, though it used others (an account seen for the first
	// time has nothing to compare with and is not "new").
	NewPrefix bool
	// Known is how many prefixes the account used within the lookback.
	Known int
	// NewTo counts the accounts, this one included, to which the origin
	// address's prefix was new (NewPrefix) when it submitted for them in
	// the last day: an account without history does not count.
	NewTo int
	// Accounts are those accounts (at most 16).
	Accounts []string
}

type prefixSeen struct {
	h    uint64
	last int64 // unix seconds
}

type acct struct {
	prefixes []prefixSeen
	dirty    bool
}

type siteUse struct {
	account string
	at      int64
	wasNew  bool
}

type siteAddr struct {
	uses []siteUse // at most maxUses
	last int64
}

const maxUses = 16

// Tracker is safe for concurrent use.
type Tracker struct {
	o     Options
	key   keyhash.Key
	keyID uint64 // names the key in snapshots
	mu    sync.Mutex
	acc   map[string]*acct
	site  map[uint64]*siteAddr
	gone  map[string]struct{} // accounts forgotten since the last Dirty
}

// New returns an empty Tracker.
func New(o Options) *Tracker {
	if o.Lookback <= 0 {
		o.Lookback = 90 * 24 * time.Hour
	}
	if o.MaxPerAccount <= 0 {
		o.MaxPerAccount = 64
	}
	if o.MaxSite <= 0 {
		o.MaxSite = 100000
	}
	t := &Tracker{o: o, key: keyhash.Derive(o.Key, "mailbrake-origin"), acc: map[string]*acct{}, site: map[uint64]*siteAddr{}}
	t.keyID = t.key.ID("origin")
	return t
}

// Prefix is the network an address belongs to for an account's history:
// its /24 (IPv4) or /48 (IPv6).
func Prefix(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := 48
	if a.Is4() {
		bits = 24
	}
	p, _ := a.Prefix(bits)
	return p
}

// Observe records that addr submitted a message for account at now.
func (t *Tracker) Observe(account string, addr netip.Addr, now time.Time) Stats {
	if !addr.IsValid() {
		return Stats{}
	}
	addr = addr.Unmap()
	pb, _ := Prefix(addr).MarshalBinary()
	ph := t.key.Sum(append([]byte("p\x00"), pb...))
	ab, _ := addr.MarshalBinary()
	ah := t.key.Sum(append([]byte("a\x00"), ab...))
	sec := now.Unix()
	cut := sec - int64(t.o.Lookback/time.Second)

	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.acc[account]
	if a == nil {
		a = &acct{}
		t.acc[account] = a
	}
	// Forget prefixes past the lookback.
	kept := a.prefixes[:0]
	for _, p := range a.prefixes {
		if p.last >= cut {
			kept = append(kept, p)
		}
	}
	a.prefixes = kept
	a.dirty = true
	var st Stats
	st.Known = len(a.prefixes)
	found := -1
	for i, p := range a.prefixes {
		if p.h == ph {
			found = i
			break
		}
	}
	switch {
	case found >= 0:
		a.prefixes[found].last = sec
	default:
		st.NewPrefix = st.Known > 0
		if len(a.prefixes) >= t.o.MaxPerAccount {
			old := 0
			for i := range a.prefixes {
				if a.prefixes[i].last < a.prefixes[old].last {
					old = i
				}
			}
			a.prefixes = append(a.prefixes[:old], a.prefixes[old+1:]...)
		}
		a.prefixes = append(a.prefixes, prefixSeen{h: ph, last: sec})
	}

	s := t.site[ah]
	if s == nil {
		if len(t.site) >= t.o.MaxSite {
			for k, v := range t.site {
				if sec-v.last > 24*3600 {
					delete(t.site, k)
				}
			}
		}
		if len(t.site) < t.o.MaxSite {
			s = &siteAddr{}
			t.site[ah] = s
		}
	}
	if s != nil {
		s.last = sec
		i := -1
		for j, u := range s.uses {
			if u.account == account {
				i = j
			}
		}
		switch {
		case i >= 0:
			// A use counts for a day from the account's first message
			// from the address; a day on, the address is judged again.
			if sec-s.uses[i].at > 24*3600 {
				s.uses[i] = siteUse{account: account, at: sec, wasNew: st.NewPrefix}
			}
		case len(s.uses) < maxUses:
			s.uses = append(s.uses, siteUse{account: account, at: sec, wasNew: st.NewPrefix})
		default:
			old := 0
			for j := range s.uses {
				if s.uses[j].at < s.uses[old].at {
					old = j
				}
			}
			s.uses[old] = siteUse{account: account, at: sec, wasNew: st.NewPrefix}
		}
		for _, u := range s.uses {
			if u.wasNew && sec-u.at <= 24*3600 {
				st.NewTo++
				st.Accounts = append(st.Accounts, u.account)
			}
		}
	}
	return st
}

// Forget drops the accounts that used no prefix within the lookback or
// within idle when that is shorter (0: the lookback only): memory for
// accounts that stopped sending. Their stored snapshots are deleted at the
// next Dirty. It returns how many accounts remain.
func (t *Tracker) Forget(at time.Time, idle time.Duration) int {
	now := at.Unix()
	cut := now - int64(t.o.Lookback/time.Second)
	if s := int64(idle / time.Second); s > 0 && now-s > cut {
		cut = now - s
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for name, a := range t.acc {
		if !slices.ContainsFunc(a.prefixes, func(p prefixSeen) bool { return p.last > cut }) {
			delete(t.acc, name)
			if t.gone == nil {
				t.gone = map[string]struct{}{}
			}
			t.gone[name] = struct{}{}
		}
	}
	return len(t.acc)
}
