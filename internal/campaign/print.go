// Package campaign recognises runs: the same message sent to many people
// in separate messages, as a phished account is used once its bulk run is
// blocked. A message's text (subject and body, decoded) is normalised —
// greetings, addresses, numbers and layout removed, links reduced to their
// host — and kept only as keyed 64-bit hashes: one of the text, one of the
// set of link hosts. A Tracker counts, per account and fingerprint, the
// separate messages and the first-time recipients over sliding windows of
// an hour, a day and a week, and which accounts of the site sent the same
// fingerprint. Nothing readable is kept.
package campaign

import (
	"net/url"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Print is a message's fingerprint.
type Print struct {
	// Text is the keyed hash of the normalised text; 0 when the message
	// has too little text of its own to recognise (a short "thanks").
	Text uint64
	// Links is the keyed hash of the sorted set of link hosts; 0 without
	// links.
	Links uint64
	// Similar are locality-sensitive keys of the text: min-hashes of its
	// four-word shingles in bands, so that texts differing in a few words
	// (a spun run) share at least one with high probability. None for a
	// text too short to recognise.
	Similar []uint64
	// Hosts are the keyed hashes of the link hosts.
	Hosts []uint64
	// HostNames are the link hosts themselves, for the detector's
	// decisions on this message only; never kept.
	HostNames []string
	// Lure reports the vocabulary of credential phishing (password,
	// mailbox quota, verify your account, invoice …) with a link, or two
	// different such terms without one.
	Lure bool
}

// Keys returns the print's non-zero keys.
func (p Print) Keys() []uint64 {
	var out []uint64
	if p.Text != 0 {
		out = append(out, p.Text)
	}
	if p.Links != 0 && p.Links != p.Text {
		out = append(out, p.Links)
	}
	for _, k := range p.Similar {
		if k != 0 && k != p.Text && k != p.Links {
			out = append(out, k)
		}
	}
	return out
}

// Normalised is a message's text as fingerprinted.
type Normalised struct {
	Text  string   // words separated by single spaces
	Words int      // words in Text
	Hosts []string // link hosts, sorted, unique
	Lure  int      // distinct lure terms found
}

// maxNormalised bounds the normalised text hashed: the start of a message
// is what a run repeats.
const maxNormalised = 4096

// MinWords is the least text of its own a message needs for a text
// fingerprint: shorter messages ("thanks, see you") are alike by nature.
const MinWords = 12

// Normalise reduces a subject and a body text (already decoded) to what a
// run repeats across its messages. It reads no further than it needs to
// fill maxNormalised.
func Normalise(subject, body string) Normalised {
	var n Normalised
	hosts := map[string]bool{}
	var b strings.Builder
	b.Grow(min(maxNormalised, len(subject)+len(body)))
	lure := map[string]bool{}
	first := true // the subject line
	greetingDone := false
	text := stripReplyPrefix(subject) + "\n" + body
lines:
	for line := range strings.Lines(text) {
		isSubject := first
		first = false
		line = strings.TrimSpace(line)
		if line == "--" {
			break // signature ("-- ", trimmed)
		}
		if line == "" {
			continue
		}
		if !isSubject && !greetingDone {
			// The first line of the body: "Dear Dr. Smith," varies per
			// recipient.
			greetingDone = true
			if isGreeting(line) {
				continue
			}
		}
		for tok := range strings.FieldsSeq(line) {
			if b.Len() >= maxNormalised {
				break lines
			}
			if h := linkHost(tok); h != "" {
				hosts[h] = true
				writeWord(&b, &n, "link:"+h)
				continue
			}
			if strings.IndexByte(tok, '@') >= 0 {
				continue // an address
			}
			words(tok, func(w string) {
				if t, ok := lureWords[w]; ok {
					lure[t] = true
				}
				writeWord(&b, &n, w)
			})
		}
	}
	n.Text = b.String()
	for _, phrase := range lurePhrases {
		if strings.Contains(n.Text, phrase) {
			lure[phrase] = true
		}
	}
	for h := range hosts {
		n.Hosts = append(n.Hosts, h)
	}
	slices.Sort(n.Hosts)
	n.Lure = len(lure)
	return n
}

func writeWord(b *strings.Builder, n *Normalised, w string) {
	if w == "" {
		return
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	b.WriteString(w)
	n.Words++
}

// words calls f with each lower-case word of letters in tok; digits and
// punctuation separate words and are dropped (numbers vary per message).
func words(tok string, f func(string)) {
	start := -1
	emit := func(w string) {
		for i := 0; i < len(w); i++ {
			if c := w[i]; c >= utf8.RuneSelf || 'A' <= c && c <= 'Z' {
				f(strings.ToLower(w))
				return
			}
		}
		f(w)
	}
	for i, r := range tok {
		if unicode.IsLetter(r) {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 {
			emit(tok[start:i])
			start = -1
		}
	}
	if start >= 0 {
		emit(tok[start:])
	}
}

// linkHost returns the host of a token that is a link (http, https, or a
// bare www. name), lower-case without a port; "" otherwise.
func linkHost(tok string) string {
	i := strings.IndexAny(tok, "hHwW")
	if i < 0 || len(tok)-i < 5 {
		return ""
	}
	tok = strings.Trim(tok, "<>()[]\"'.,;")
	lower := strings.ToLower(tok)
	switch {
	case strings.HasPrefix(lower, "http://"), strings.HasPrefix(lower, "https://"):
	case strings.HasPrefix(lower, "www."):
		lower = "http://" + lower
	default:
		return ""
	}
	u, err := url.Parse(lower)
	if err != nil || u.Hostname() == "" || !utf8.ValidString(u.Hostname()) {
		return ""
	}
	return strings.TrimSuffix(u.Hostname(), ".")
}

// stripReplyPrefix removes "Re:", "Fwd:" and the like from a subject.
func stripReplyPrefix(s string) string {
	for {
		t := strings.TrimSpace(s)
		lower := strings.ToLower(t)
		cut := false
		for _, p := range []string{"re:", "fw:", "fwd:", "aw:", "wg:", "tr:", "sv:", "rv:"} {
			if strings.HasPrefix(lower, p) {
				s, cut = t[len(p):], true
				break
			}
		}
		if !cut {
			return t
		}
	}
}

var greetings = []string{"dear", "hi", "hello", "hey", "good morning", "good afternoon", "good evening", "greetings", "hallo", "bonjour", "hola", "liebe", "lieber", "sehr geehrte"}

// isGreeting reports a short salutation line ("Dear Ann," "Hi all").
func isGreeting(line string) bool {
	lower := strings.ToLower(line)
	if len(strings.Fields(lower)) > 6 {
		return false
	}
	for _, g := range greetings {
		if strings.HasPrefix(lower, g) && (len(lower) == len(g) || !unicode.IsLetter(rune(lower[len(g)]))) {
			return true
		}
	}
	return false
}

// lureWords are single words of credential-phishing lures, with their
// stem as the term (so "verify" and "verification" count once).
var lureWords = map[string]string{
	"password": "password", "passwords": "password", "passwort": "password", "contraseña": "password", "login": "login", "logon": "login",
	"signin": "login", "credentials": "credentials", "verify": "verify", "verification": "verify", "validate": "verify", "validation": "verify",
	"confirm": "verify", "quota": "quota", "mailbox": "mailbox", "storage": "quota", "invoice": "invoice", "invoices": "invoice",
	"payment": "invoice", "suspended": "suspended", "suspension": "suspended", "deactivated": "suspended", "deactivation": "suspended",
	"disabled": "suspended", "expire": "expire", "expires": "expire", "expired": "expire", "expiration": "expire", "unlock": "unlock",
	"helpdesk": "helpdesk", "webmail": "webmail", "voicemail": "document", "docusign": "document", "sharepoint": "document",
}

// lurePhrases are lure terms of more than one word, matched in the
// normalised text.
var lurePhrases = []string{"sign in", "log in", "your account", "mot de passe", "it department", "help desk", "click here", "shared a document", "security alert"}
