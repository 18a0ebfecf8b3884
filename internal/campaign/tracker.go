package campaign

import (
	"encoding/binary"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailbrake/mailbrake/internal/keyhash"
)

// Options configures a Tracker.
type Options struct {
	// Key keys every hash (32 bytes; the novelty key). Prints taken under
	// another key never match.
	Key []byte
	// MaxPerAccount bounds the fingerprints remembered per account (the
	// least recently sent are forgotten first). Default 256.
	MaxPerAccount int
	// MaxSite bounds the fingerprints remembered for the whole site (which
	// accounts sent them). Default 50,000.
	MaxSite int
	// MaxAccountsPerPrint bounds the accounts remembered per site
	// fingerprint. Default 16.
	MaxAccountsPerPrint int
}

// Stats is what the Tracker knows of a fingerprint after a message: the
// separate messages and first-time recipients of this account over the
// windows, and how many accounts of the site sent it in the last day.
type Stats struct {
	Messages1h, Messages24h, Messages7d int
	New1h, New24h, New7d                int
	// External1h … are the first-time recipients outside the local
	// domains.
	External1h, External24h, External7d int
	Accounts24h                         int
	// SiteMessages24h and SiteExternal24h are the separate messages and
	// first-time outside recipients of the print from every account of
	// the site in the last day.
	SiteMessages24h, SiteExternal24h int
	// Kind says which of the print's keys the counts are of: "text"
	// (the same normalised text), "links" (the same set of link hosts) or
	// "similar text" (shared shingles).
	Kind string
}

// window is one hour's messages and first-time recipients of a print.
type window struct {
	hour uint32 // hours since the Unix epoch
	msgs uint16
	new  uint16
	ext  uint16
}

// run is an account's history of one print: at most a week of hours.
type run struct {
	hours []window
	last  int64 // unix seconds of the last message
}

type acct struct {
	name  string
	runs  map[uint64]*run
	dirty bool // changed since the last snapshot
	// trusted are prints an admin judged legitimate for this account,
	// until when (unix seconds).
	trusted map[uint64]int64
}

// sitePrint is which accounts sent one print lately.
type sitePrint struct {
	accounts []string
	at       []int64 // unix seconds each last sent it
	last     int64
	r        run // the site's messages and first-time recipients of it
}

// Tracker counts fingerprints. It is safe for concurrent use.
type Tracker struct {
	o     Options
	key   keyhash.Key
	keyID uint64 // names the key in snapshots
	mu    sync.Mutex
	acc   map[string]*acct
	// site: print → accounts that sent it.
	site map[uint64]*sitePrint
	// hosts: link hosts the site's outbound mail carried.
	hosts      map[uint64]*hostSeen
	hostsDirty bool
	// spam: prints an admin marked as spam, with when (unix seconds).
	spam      map[uint64]int64
	spamDirty map[uint64]bool
	gone      map[string]struct{} // accounts forgotten since the last Dirty
}

// New returns an empty Tracker.
func New(o Options) *Tracker {
	if o.MaxPerAccount <= 0 {
		o.MaxPerAccount = 256
	}
	if o.MaxSite <= 0 {
		o.MaxSite = 50000
	}
	if o.MaxAccountsPerPrint <= 0 {
		o.MaxAccountsPerPrint = 16
	}
	// Domain-separated from the novelty hashes made with the same key.
	t := &Tracker{o: o, key: keyhash.Derive(o.Key, "mailbrake-campgn"), acc: map[string]*acct{}, site: map[uint64]*sitePrint{},
		spam: map[uint64]int64{}, spamDirty: map[uint64]bool{}, hosts: map[uint64]*hostSeen{}}
	t.keyID = t.key.ID("campaign")
	return t
}

// Print fingerprints a message.
func (t *Tracker) Print(subject, body string) Print {
	n := Normalise(subject, body)
	var p Print
	if n.Words >= MinWords {
		p.Text = t.key.Sum([]byte("t\x00" + n.Text))
		p.Similar = t.similar(n.Text)
	}
	if len(n.Hosts) > 0 {
		p.Links = t.key.Sum([]byte("l\x00" + strings.Join(n.Hosts, " ")))
		for _, h := range n.Hosts {
			p.Hosts = append(p.Hosts, t.key.Sum([]byte("h\x00"+h)))
		}
		p.HostNames = n.Hosts
	}
	p.Lure = n.Lure >= 2 || n.Lure >= 1 && len(n.Hosts) > 0
	return p
}

const week = 7 * 24

// Min-hash bands: bands × rows min-hashes of the text's shingles. Two
// texts with shingle similarity J share a band with probability
// 1-(1-J^rows)^bands: 0.93 at J = 0.8, 0.41 at 0.5, 0.10 at 0.3.
const (
	bands        = 4
	rows         = 3
	shingleWords = 4
	maxShingles  = 400
)

// mixers derive the min-hash functions from one keyed hash per shingle
// (odd multipliers: a bijection on 64 bits).
var mixers = [bands * rows]uint64{
	0x9e3779b97f4a7c15, 0xbf58476d1ce4e5b9, 0x94d049bb133111eb, 0xd6e8feb86659fd93,
	0xa0761d6478bd642f, 0xe7037ed1a0b428db, 0x8ebc6af09c88c6e3, 0x589965cc75374cc3,
	0x1d8e4e27c47d124f, 0xc2b2ae3d27d4eb4f, 0x165667b19e3779f9, 0x85ebca77c2b2ae63,
}

// similar returns the band keys of a normalised text.
func (t *Tracker) similar(text string) []uint64 {
	// One keyed hash per word, the shingle's hash a mix of its words'.
	wh := make([]uint64, 0, 64)
	for w := range strings.FieldsSeq(text) {
		wh = append(wh, t.key.Sum([]byte(w)))
		if len(wh) >= maxShingles+shingleWords {
			break
		}
	}
	if len(wh) < shingleWords {
		return nil
	}
	var mins [bands * rows]uint64
	for i := range mins {
		mins[i] = ^uint64(0)
	}
	for i := 0; i+shingleWords <= len(wh); i++ {
		h := wh[i]
		for _, x := range wh[i+1 : i+shingleWords] {
			h = (h^(h>>31))*0xff51afd7ed558ccd ^ x
		}
		for j, m := range mixers {
			v := (h ^ uint64(j)) * m
			v ^= v >> 29
			if v < mins[j] {
				mins[j] = v
			}
		}
	}
	out := make([]uint64, 0, bands)
	var buf [8 * (rows + 1)]byte
	for b := range bands {
		binary.LittleEndian.PutUint64(buf[:8], uint64(b))
		for r := range rows {
			binary.LittleEndian.PutUint64(buf[8*(r+1):], mins[b*rows+r])
		}
		out = append(out, t.key.Sum(append([]byte("b\x00"), buf[:]...)))
	}
	return out
}

// Observe records one message of account with print p that went to
// newRcpts first-time recipients, newExternal of them outside the local
// domains, and returns the counts of whichever of
// the print's keys (text or link set) has seen more messages. A message
// to no first-time recipient is counted only for a print already tracked:
// what a run is made of is mail to people the account never wrote to.
func (t *Tracker) Observe(account string, p Print, newRcpts, newExternal int, now time.Time) Stats {
	keys := p.Keys()
	if len(keys) == 0 {
		return Stats{}
	}
	hour := uint32(now.Unix() / 3600)
	sec := now.Unix()
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.acc[account]
	if a == nil {
		if newRcpts == 0 {
			return Stats{}
		}
		a = &acct{name: account, runs: map[uint64]*run{}}
		t.acc[account] = a
	}
	// The message joins the run any of its keys already names (the
	// busiest, when several do); its other keys become names of that run
	// too, so a spun run whose messages share different shingles is one
	// run.
	var r *run
	kind := ""
	for _, k := range keys {
		if x := a.runs[k]; x != nil && (r == nil || x.count(hour) > r.count(hour)) {
			r, kind = x, p.kindOf(k)
		}
	}
	if r == nil {
		if newRcpts == 0 {
			return Stats{}
		}
		r, kind = &run{}, p.kindOf(keys[0])
	}
	for _, k := range keys {
		if a.runs[k] != r {
			if _, had := a.runs[k]; !had && len(a.runs) >= t.o.MaxPerAccount {
				a.forgetOldest()
			}
			a.runs[k] = r
		}
	}
	r.add(hour, newRcpts, newExternal)
	r.last = sec
	a.dirty = true
	s := r.stats(hour)
	s.Kind = kind
	for _, k := range keys {
		n, site := t.noteSite(k, a.name, sec, hour, newRcpts, newExternal)
		if n > s.Accounts24h || n == s.Accounts24h && site.Messages24h > s.SiteMessages24h {
			s.Accounts24h, s.SiteMessages24h, s.SiteExternal24h = n, site.Messages24h, site.External24h
		}
	}
	return s
}

// kindOf names which of the print's keys k is.
func (p Print) kindOf(k uint64) string {
	switch k {
	case p.Text:
		return "text"
	case p.Links:
		return "links"
	}
	return "similar text"
}

// count is the run's messages over the week.
func (r *run) count(hour uint32) int { return r.stats(hour).Messages7d }

// Accounts returns the accounts that sent any of the print's keys within
// the last day (at most MaxAccountsPerPrint each).
func (t *Tracker) Accounts(p Print, now time.Time) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, k := range p.Keys() {
		sp := t.site[k]
		if sp == nil {
			continue
		}
		for i, a := range sp.accounts {
			if now.Unix()-sp.at[i] <= 24*3600 && !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	return out
}

// noteSite records that account sent print k and returns how many
// accounts sent it in the last day.
func (t *Tracker) noteSite(k uint64, account string, sec int64, hour uint32, newRcpts, newExternal int) (int, Stats) {
	sp := t.site[k]
	if sp == nil {
		if len(t.site) >= t.o.MaxSite {
			t.pruneSite(sec)
			if len(t.site) >= t.o.MaxSite {
				return 1, Stats{}
			}
		}
		sp = &sitePrint{}
		t.site[k] = sp
	}
	sp.last = sec
	sp.r.add(hour, newRcpts, newExternal)
	// The site's counts need a day only: at most 24 windows a print.
	i := 0
	for i < len(sp.r.hours) && hour > sp.r.hours[i].hour && hour-sp.r.hours[i].hour >= 24 {
		i++
	}
	sp.r.hours = sp.r.hours[i:]
	found := false
	n := 0
	for i, a := range sp.accounts {
		if a == account {
			sp.at[i], found = sec, true
		}
	}
	if !found {
		if len(sp.accounts) < t.o.MaxAccountsPerPrint {
			sp.accounts = append(sp.accounts, account)
			sp.at = append(sp.at, sec)
		} else {
			// Replace the account that sent it longest ago.
			old := 0
			for i := range sp.at {
				if sp.at[i] < sp.at[old] {
					old = i
				}
			}
			sp.accounts[old], sp.at[old] = account, sec
		}
	}
	for _, at := range sp.at {
		if sec-at <= 24*3600 {
			n++
		}
	}
	return n, sp.r.stats(hour)
}

// pruneSite forgets site prints not sent for a day.
func (t *Tracker) pruneSite(sec int64) {
	for k, sp := range t.site {
		if sec-sp.last > 24*3600 {
			delete(t.site, k)
		}
	}
}

func (a *acct) forgetOldest() {
	var oldK uint64
	var old *run
	for k, r := range a.runs {
		if old == nil || r.last < old.last {
			oldK, old = k, r
		}
	}
	delete(a.runs, oldK)
}

func (r *run) add(hour uint32, newRcpts, newExternal int) {
	// Drop hours older than a week.
	i := 0
	for i < len(r.hours) && hour > r.hours[i].hour && hour-r.hours[i].hour >= week {
		i++
	}
	if i > 0 {
		r.hours = append(r.hours[:0], r.hours[i:]...)
	}
	if n := len(r.hours); n > 0 && r.hours[n-1].hour >= hour {
		w := &r.hours[n-1]
		w.msgs = sat16(int(w.msgs) + 1)
		w.new = sat16(int(w.new) + newRcpts)
		w.ext = sat16(int(w.ext) + newExternal)
		return
	}
	r.hours = append(r.hours, window{hour: hour, msgs: 1, new: sat16(newRcpts), ext: sat16(newExternal)})
}

func (r *run) stats(hour uint32) Stats {
	var s Stats
	for _, w := range r.hours {
		age := uint32(0) // a message out of time order counts as now
		if hour > w.hour {
			age = hour - w.hour
		}
		if age >= week {
			continue
		}
		s.Messages7d += int(w.msgs)
		s.New7d += int(w.new)
		s.External7d += int(w.ext)
		if age < 24 {
			s.Messages24h += int(w.msgs)
			s.New24h += int(w.new)
			s.External24h += int(w.ext)
		}
		if age == 0 {
			s.Messages1h += int(w.msgs)
			s.New1h += int(w.new)
			s.External1h += int(w.ext)
		}
	}
	return s
}

func sat16(v int) uint16 {
	if v > 0xffff {
		return 0xffff
	}
	if v < 0 {
		return 0
	}
	return uint16(v)
}

// hostSeen is a link host the site's outbound mail carried: when first
// (unix seconds), last, and the first-time recipients of the messages that
// carried it in its first day.
type hostSeen struct {
	first, last int64
	newRcpts    uint32
}

// maxHosts bounds the link hosts remembered for the site; hostLookback
// is how long an unused host is remembered.
const (
	maxHosts     = 50000
	hostLookback = 90 * 24 * 3600
)

// HostNews is what the site knew of a message's link hosts.
type HostNews struct {
	// New counts the hosts the site's outbound mail never carried
	// before this message.
	New int
	// FirstDayRcpts is the most first-time recipients that messages
	// carrying one host reached within a day of its first appearance,
	// this message included (0 when every host is older than a day).
	FirstDayRcpts int
}

// ObserveHosts records the link hosts (keyed hashes) of an outbound
// message that went to newRcpts first-time recipients.
func (t *Tracker) ObserveHosts(hosts []uint64, newRcpts int, now time.Time) HostNews {
	var hn HostNews
	if len(hosts) == 0 {
		return hn
	}
	sec := now.Unix()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, h := range hosts {
		e := t.hosts[h]
		if e == nil {
			if len(t.hosts) >= maxHosts {
				for k, v := range t.hosts {
					if sec-v.last > hostLookback {
						delete(t.hosts, k)
					}
				}
				if len(t.hosts) >= maxHosts {
					continue // full: not judged
				}
			}
			e = &hostSeen{first: sec}
			t.hosts[h] = e
			hn.New++
		}
		e.last = sec
		if sec-e.first <= 24*3600 {
			e.newRcpts += uint32(max(newRcpts, 0))
			hn.FirstDayRcpts = max(hn.FirstDayRcpts, int(e.newRcpts))
		}
		t.hostsDirty = true
	}
	return hn
}

// maxTrusted bounds the prints trusted per account.
const maxTrusted = 64

// Trust records that an admin judged the account's run of p legitimate
// (release and trust, a dismissed incident): its messages of p are not a
// run until until, and the counts start again.
func (t *Tracker) Trust(account string, p Print, until time.Time) {
	keys := p.Keys()
	if len(keys) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.acc[account]
	if a == nil {
		a = &acct{name: account, runs: map[uint64]*run{}}
		t.acc[account] = a
	}
	if a.trusted == nil {
		a.trusted = map[uint64]int64{}
	}
	for _, k := range keys {
		if _, ok := a.trusted[k]; !ok && len(a.trusted) >= maxTrusted {
			delete(a.trusted, oldest(a.trusted))
		}
		a.trusted[k] = until.Unix()
		delete(a.runs, k)
	}
	a.dirty = true
}

// Trusted reports whether the account's run of p is trusted at now.
func (t *Tracker) Trusted(account string, p Print, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.acc[account]
	if a == nil {
		return false
	}
	for _, k := range p.Keys() {
		if u, ok := a.trusted[k]; ok && u >= now.Unix() {
			return true
		}
	}
	return false
}

// oldest is the key of m with the smallest time.
func oldest(m map[uint64]int64) uint64 {
	var oldK uint64
	old := int64(-1)
	for k, at := range m {
		if old < 0 || at < old {
			oldK, old = k, at
		}
	}
	return oldK
}

// maxSpam bounds the prints remembered as spam (the oldest marks are
// forgotten first).
const maxSpam = 10000

// MarkSpam remembers the text print of a message an admin marked as spam
// (its link set when it has too little text): the same text is then held
// from any account. Link sets alone are not marked: a user forwarding the
// phish to the help desk with a note of their own sends the same links.
func (t *Tracker) MarkSpam(p Print, now time.Time) {
	k := p.Text
	if k == 0 {
		k = p.Links
	}
	if k == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.spam) >= maxSpam {
		oldK := oldest(t.spam)
		delete(t.spam, oldK)
		t.spamDirty[oldK] = true
	}
	t.spam[k] = now.Unix()
	t.spamDirty[k] = true
}

// MarkedSpam reports whether an admin marked the print as spam.
func (t *Tracker) MarkedSpam(p Print) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p.Text != 0 {
		_, ok := t.spam[p.Text]
		return ok
	}
	_, ok := t.spam[p.Links]
	return p.Links != 0 && ok
}

// Strings returns the print as a hold record keeps it: "text:HEX",
// "links:HEX" for the keys it has.
func (p Print) Strings() []string {
	var out []string
	if p.Text != 0 {
		out = append(out, "text:"+strconv.FormatUint(p.Text, 16))
	}
	if p.Links != 0 {
		out = append(out, "links:"+strconv.FormatUint(p.Links, 16))
	}
	return out
}

// ParsePrints reads a hold record's prints (Strings) back; what does not
// parse is skipped.
func ParsePrints(ss []string) Print {
	var p Print
	for _, s := range ss {
		kind, hex, _ := strings.Cut(s, ":")
		v, err := strconv.ParseUint(hex, 16, 64)
		if err != nil || v == 0 {
			continue
		}
		switch kind {
		case "text":
			p.Text = v
		case "links":
			p.Links = v
		}
	}
	return p
}

// Size is what the Tracker holds: accounts, their fingerprints, hour
// windows, and site fingerprints.
type Size struct {
	Accounts, Prints, Windows, SitePrints int
}

// Size counts what the Tracker holds.
func (t *Tracker) Size() Size {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := Size{Accounts: len(t.acc), SitePrints: len(t.site)}
	for _, a := range t.acc {
		s.Prints += len(a.runs)
		for _, r := range a.runs {
			s.Windows += len(r.hours)
		}
	}
	return s
}

// Forget drops the accounts that sent nothing within a week (the longest
// run window) or within idle when that is shorter (0: the week only) and
// have no trust in force: memory for accounts that stopped sending. Their
// stored snapshots are deleted at the next Dirty. It returns how many
// accounts remain.
func (t *Tracker) Forget(at time.Time, idle time.Duration) int {
	now := at.Unix()
	cut := now - week*3600
	if s := int64(idle / time.Second); s > 0 && now-s > cut {
		cut = now - s
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for name, a := range t.acc {
		recent := false
		for _, r := range a.runs {
			if r.last > cut {
				recent = true
				break
			}
		}
		for _, until := range a.trusted {
			if until > now {
				recent = true
				break
			}
		}
		if !recent {
			delete(t.acc, name)
			if t.gone == nil {
				t.gone = map[string]struct{}{}
			}
			t.gone[name] = struct{}{}
		}
	}
	return len(t.acc)
}
