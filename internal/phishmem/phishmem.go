package phishmem

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/mail"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mailbrake/mailbrake/internal/engine"
	"github.com/mailbrake/mailbrake/internal/verdict"
)

// ReasonReplyToSuspectedPhish is reported for an outbound reply to
// remembered phish.
const ReasonReplyToSuspectedPhish engine.Reason = "reply-to-suspected-phish"

// HeaderMatch tags a message when a header matches a regular expression.
type HeaderMatch struct {
	Header  string
	Matches *regexp.Regexp
}

// Options configures the detector.
type Options struct {
	Retention   time.Duration // default 30 days
	MaxEntries  int           // default 1,000,000
	SpamFlag    bool          // X-Spam-Flag: YES tags
	SubjectTags []string      // e.g. "[Fraud Alert: Suspected SPAM]" (case-insensitive substring)
	Headers     []HeaderMatch
	Action      engine.Action // default hold
	Score       int
	DryRun      bool
	// TrustTags says which tags are believed: TrustFirstPass, TrustReinjection
	// or TrustAuto (the default).
	TrustTags string
}

// The TrustTags values. A tag on a message as it arrives may have been
// written by its sender: an outsider who puts X-Spam-Flag: YES or the
// site's subject tag into their own mail would make every reply to them
// held. Tags a content filter adds after mailbrake's first look at the
// message are the site's own: on its re-injection pass (engine
// Submission.Reinjected) a tag counts only when the message carries more
// of it than it did on the first pass.
const (
	TrustFirstPass   = "first-pass"
	TrustReinjection = "reinjection"
	// TrustAuto believes the first pass until a re-injected message has
	// been seen, then only re-injection passes.
	TrustAuto = "auto"
)

// Memory is the detector. Safe for concurrent use.
type Memory struct {
	o       Options
	mu      sync.Mutex
	ids     map[string]time.Time // normalised Message-ID → expiry
	addrs   map[string]time.Time // normalised Reply-To/From address → expiry
	inserts int
	dirty   map[string]bool // snapshot keys changed since the last Dirty
	// firstPass keeps, per Message-ID, how many tags a message carried on
	// its first pass, until its re-injection (two generations, bounded).
	firstPass, firstPassOld map[string]int
	// sawReinjection: a re-injected message has been seen (TrustAuto).
	sawReinjection bool

	// Learned, when set (cluster mode), is given every entry this memory
	// learns from its own inbound mail, encoded for ApplyLearned on the
	// other nodes. Set before the first message; it must not block.
	Learned func(event []byte)
}

// maxFirstPass bounds the first-pass tag counts kept per generation: a
// content filter hands a message back within seconds, so minutes of
// inbound mail is plenty.
const maxFirstPass = 50_000

var _ engine.Detector = (*Memory)(nil)

// New returns an empty memory.
func New(o Options) *Memory {
	if o.Retention <= 0 {
		o.Retention = 30 * 24 * time.Hour
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = 1_000_000
	}
	if o.Action == engine.ActionAllow {
		o.Action = engine.ActionHold
	}
	if o.TrustTags == "" {
		o.TrustTags = TrustAuto
	}
	return &Memory{o: o, ids: map[string]time.Time{}, addrs: map[string]time.Time{}, dirty: map[string]bool{}, firstPass: map[string]int{}}
}

// NormalizeID lower-cases a Message-ID and strips angle brackets and
// whitespace; "" when it is not plausibly one.
func NormalizeID(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimSuffix(strings.TrimPrefix(s, "<"), ">")
	if s == "" || len(s) > 998 {
		return ""
	}
	// RFC 5322 msg-id: printable US-ASCII, no angle brackets inside.
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '<' || c == '>' {
			return ""
		}
	}
	return strings.ToLower(s)
}

// NormalizeAddress extracts and lower-cases an address from a header value
// ("Name <a@b>" or "a@b"); "" when there is none. The result normalizes to
// itself: a value whose parse changes again on a second pass (malformed
// quoting or brackets) is normalized until it stops changing, or refused.
func NormalizeAddress(s string) string {
	if !utf8.ValidString(s) {
		return ""
	}
	for range 4 {
		n := normalizeAddressOnce(s)
		if n == "" || n == s {
			return n
		}
		s = n
	}
	return ""
}

func normalizeAddressOnce(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	// A bare address (every envelope recipient) needs no header parser.
	if strings.ContainsAny(s, "<>\"(),;: \t\\") || !isASCII(s) {
		if a, err := mail.ParseAddress(s); err == nil {
			s = a.Address
		}
	}
	// Trim brackets and every kind of white space together, and refuse
	// any white space or control character left inside, so that the
	// result normalizes to itself.
	s = strings.ToLower(strings.TrimFunc(s, func(r rune) bool { return r == '<' || r == '>' || unicode.IsSpace(r) }))
	if !strings.Contains(s, "@") || len(s) > 320 || strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return ""
	}
	return s
}

// NoteReinjection implements engine.ReinjectionNoter: with TrustAuto, tags
// are believed only from re-injection passes once one has been seen.
func (m *Memory) NoteReinjection() {
	m.mu.Lock()
	m.sawReinjection = true
	m.mu.Unlock()
}

// tagCount counts the tags a message carries: every X-Spam-Flag: YES copy,
// every occurrence of a subject tag, every matching header copy.
func (m *Memory) tagCount(sub *engine.Submission) int {
	values := sub.HeaderValues
	if values == nil {
		if sub.Header == nil {
			return 0
		}
		values = func(name string) []string {
			if v := sub.Header(name); v != "" {
				return []string{v}
			}
			return nil
		}
	}
	n := 0
	if m.o.SpamFlag {
		for _, v := range values("X-Spam-Flag") {
			if strings.EqualFold(strings.TrimSpace(v), "yes") {
				n++
			}
		}
	}
	subject := strings.ToLower(sub.Subject)
	for _, tag := range m.o.SubjectTags {
		if tag != "" {
			n += strings.Count(subject, strings.ToLower(tag))
		}
	}
	for _, h := range m.o.Headers {
		for _, v := range values(h.Header) {
			if h.Matches.MatchString(v) {
				n++
			}
		}
	}
	return n
}

// Inbound implements engine.Detector: remember tagged mail, believing the
// tags TrustTags says to.
func (m *Memory) Inbound(_ context.Context, sub *engine.Submission) []engine.Finding {
	n := m.tagCount(sub)
	id := NormalizeID(sub.MessageID)
	m.mu.Lock()
	defer m.mu.Unlock()
	if sub.Reinjected {
		m.sawReinjection = true
	}
	fromFilter := m.o.TrustTags == TrustReinjection || (m.o.TrustTags == TrustAuto && m.sawReinjection)
	switch {
	case !fromFilter:
		if n == 0 {
			return nil
		}
	case !sub.Reinjected:
		// First pass: remember what the sender wrote; learn nothing yet.
		if id != "" && n > 0 {
			if len(m.firstPass) >= maxFirstPass {
				m.firstPassOld, m.firstPass = m.firstPass, make(map[string]int, maxFirstPass)
			}
			m.firstPass[id] = n
		}
		return nil
	default:
		before, ok := m.firstPass[id]
		if !ok {
			before = m.firstPassOld[id]
		}
		if n <= before {
			return nil
		}
	}
	exp := sub.Time.Add(m.o.Retention)
	if id != "" {
		m.learn(m.ids, id, exp, sub.Time)
	}
	// A reply goes to Reply-To when there is one, else to From.
	if a := NormalizeAddress(sub.ReplyTo); a != "" {
		m.learn(m.addrs, a, exp, sub.Time)
	} else if a := NormalizeAddress(sub.From); a != "" {
		m.learn(m.addrs, a, exp, sub.Time)
	}
	return nil
}

// learn remembers an entry learned here and tells Learned.
func (m *Memory) learn(into map[string]time.Time, key string, exp, now time.Time) {
	m.put(into, key, exp, now)
	if m.Learned != nil {
		m.Learned(append(binary.AppendVarint(nil, exp.Unix()), m.snapKey(into, key)...))
	}
}

// maxLearnedKey bounds a learned entry's key: a Message-ID or an address
// is far shorter.
const maxLearnedKey = 1000

// ApplyLearned remembers an entry another node learned (Learned's
// event): the expiry as a varint, then "i:" and a normalised Message-ID
// or "a:" and a normalised address. An expired entry is ignored; a later
// expiry already known stands.
func (m *Memory) ApplyLearned(ev []byte) error {
	exp, n := binary.Varint(ev)
	if n <= 0 {
		return fmt.Errorf("phishmem: learned event: no expiry")
	}
	k := string(ev[n:])
	if len(k) < 3 || len(k) > maxLearnedKey {
		return fmt.Errorf("phishmem: learned event: key of %d bytes", len(k))
	}
	key := k[2:]
	m.mu.Lock()
	defer m.mu.Unlock()
	var mp map[string]time.Time
	switch k[:2] {
	case "i:":
		if NormalizeID(key) != key {
			return fmt.Errorf("phishmem: learned event: not a normalised Message-ID")
		}
		mp = m.ids
	case "a:":
		if NormalizeAddress(key) != key {
			return fmt.Errorf("phishmem: learned event: not a normalised address")
		}
		mp = m.addrs
	default:
		return fmt.Errorf("phishmem: learned event: unknown kind %q", k[:2])
	}
	at, now := time.Unix(exp, 0), time.Now()
	if !at.After(now) {
		return nil
	}
	if cur, ok := mp[key]; ok && !cur.Before(at) {
		return nil
	}
	m.put(mp, key, at, now)
	return nil
}

func (m *Memory) put(into map[string]time.Time, key string, exp, now time.Time) {
	if _, ok := into[key]; !ok && len(m.ids)+len(m.addrs) >= m.o.MaxEntries {
		m.evict(now)
	}
	into[key] = exp
	m.dirty[m.snapKey(into, key)] = true
}

func (m *Memory) snapKey(mp map[string]time.Time, key string) string {
	if isIDs(mp, m.ids) {
		return "i:" + key
	}
	return "a:" + key
}

// isIDs reports whether mp is the Message-ID map (the same map value).
func isIDs(mp, ids map[string]time.Time) bool {
	return reflect.ValueOf(mp).UnsafePointer() == reflect.ValueOf(ids).UnsafePointer()
}

// evict drops expired entries, and if still full, about a tenth of the
// entries closest to expiry.
func (m *Memory) evict(now time.Time) {
	for _, mp := range []map[string]time.Time{m.ids, m.addrs} {
		for k, e := range mp {
			if !e.After(now) {
				delete(mp, k)
				m.dirty[m.snapKey(mp, k)] = true
			}
		}
	}
	over := len(m.ids) + len(m.addrs) - m.o.MaxEntries*9/10
	if over <= 0 {
		return
	}
	type kv struct {
		mp  map[string]time.Time
		k   string
		exp time.Time
	}
	all := make([]kv, 0, len(m.ids)+len(m.addrs))
	for _, mp := range []map[string]time.Time{m.ids, m.addrs} {
		for k, e := range mp {
			all = append(all, kv{mp, k, e})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].exp.Before(all[j].exp) })
	for _, x := range all[:over] {
		delete(x.mp, x.k)
		m.dirty[m.snapKey(x.mp, x.k)] = true
	}
}

// Outbound implements engine.Detector: a reply to remembered phish.
func (m *Memory) Outbound(_ context.Context, sub *engine.Submission) []engine.Finding {
	m.mu.Lock()
	defer m.mu.Unlock()
	live := func(mp map[string]time.Time, k string) bool {
		e, ok := mp[k]
		return ok && e.After(sub.Time)
	}
	ids := append([]string{sub.InReplyTo}, sub.References...)
	for _, id := range ids {
		if n := NormalizeID(id); n != "" && live(m.ids, n) {
			return []engine.Finding{m.finding("in-reply-to/references names remembered phish")}
		}
	}
	for _, r := range sub.Recipients {
		if a := NormalizeAddress(r); a != "" && live(m.addrs, a) {
			return []engine.Finding{m.finding(fmt.Sprintf("recipient is the reply address of remembered phish (%d recipients)", len(sub.Recipients)))}
		}
	}
	return nil
}

func (m *Memory) finding(evidence string) engine.Finding {
	return engine.Finding{Rule: "reply-to-suspected-phish", Reason: ReasonReplyToSuspectedPhish, Family: verdict.Phish, Action: m.o.Action, Score: m.o.Score, DryRun: m.o.DryRun, Evidence: evidence}
}

// Len returns how many Message-IDs and addresses are remembered.
func (m *Memory) Len() (ids, addrs int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.ids), len(m.addrs)
}

// Dirty returns the snapshot entries changed since the last call: key
// "i:<message-id>" or "a:<address>", value the expiry as Unix seconds
// (varint), nil for a removed entry. The daemon stores them so remembered
// phish survives a restart.
func (m *Memory) Dirty() map[string][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string][]byte, len(m.dirty))
	for k := range m.dirty {
		mp := m.addrs
		if strings.HasPrefix(k, "i:") {
			mp = m.ids
		}
		if exp, ok := mp[k[2:]]; ok {
			out[k] = binary.AppendVarint(nil, exp.Unix())
		} else {
			out[k] = nil
		}
	}
	clear(m.dirty)
	return out
}

// Restore loads entries from Dirty snapshots.
func (m *Memory) Restore(snaps map[string][]byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	bad := 0
	for k, v := range snaps {
		exp, n := binary.Varint(v)
		if n <= 0 || n != len(v) || len(k) < 3 {
			bad++
			continue
		}
		// Learned since start too (a background restore): the later
		// expiry stands.
		at := time.Unix(exp, 0)
		switch k[:2] {
		case "i:":
			if cur, ok := m.ids[k[2:]]; !ok || cur.Before(at) {
				m.ids[k[2:]] = at
			}
		case "a:":
			if cur, ok := m.addrs[k[2:]]; !ok || cur.Before(at) {
				m.addrs[k[2:]] = at
			}
		default:
			bad++
		}
	}
	if bad > 0 {
		return fmt.Errorf("phishmem: %d undecodable snapshot entries skipped", bad)
	}
	return nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
