package fingerprint

import (
	"unicode"
	"unicode/utf8"
)

// maxClient bounds Result.Client. The longest value in the shared corpus
// (shared/data/mua-header-fingerprints/headers.csv) is 115 bytes, and Gecko
// user agent strings with Thunderbird are about 90, so 256 bytes keeps every
// real value whole while capping what a hostile header costs to classify,
// log and store.
const maxClient = 256

// Result is what Classify found.
type Result struct {
	// Family is the client family.
	Family Family
	// Client is the header value the family was read from, unfolded, with
	// white space collapsed, control and formatting characters removed,
	// invalid UTF-8 replaced and cut to at most 256 bytes. It is empty for
	// FamilyNone.
	Client string
	// Version is the client's version when it can be read, such as
	// "8.8.15_GA_4545" (the server build, for Zimbra), "1.4.11" for
	// Roundcube or "17A5831c" for iPhone Mail. It is a substring of Client.
	Version string
}

// Classify names the client family from the values of a message's X-Mailer
// and User-Agent header fields; an absent field is the empty string. The
// first value that a rule recognises wins, X-Mailer first (see the package
// documentation). Classify never returns FamilyUnknown.
func Classify(xMailer, userAgent string) Result {
	// In the common case only X-Mailer is present (Zimbra, Outlook, Apple
	// Mail and scripts write only X-Mailer) and one pass decides.
	x, xs := classify(xMailer, userAgent == "")
	if xs == found {
		return x
	}
	u, us := classify(userAgent, xs == empty)
	if us == found {
		return u
	}
	if xs == unrecognised {
		// Neither value is recognised, and the User-Agent is empty once
		// cleaned: the X-Mailer is the client. Only this rare path cleans a
		// value twice.
		x, _ = classify(xMailer, true)
		return x
	}
	return Result{Family: FamilyNone}
}

// state is what classify made of one value.
type state uint8

const (
	empty        state = iota // nothing left once cleaned
	unrecognised              // no rule matched and other was not set
	found                     // a rule matched, or FamilyOther as asked
)

// classify cleans one header value and applies the rules. A value that no
// rule recognises gives FamilyOther when other is set.
func classify(s string, other bool) (Result, state) {
	if s == "" {
		return Result{}, empty
	}
	var buf [maxClient]byte
	n, start, clean := normalize(&buf, s)
	if n == 0 {
		return Result{}, empty
	}
	v := buf[:n]
	f, ver, ok := match(v)
	if !ok {
		if !other {
			return Result{}, unrecognised
		}
		f, ver = FamilyOther, span{}
	}
	// When v is a verbatim slice of s, Client shares s's memory and
	// nothing is allocated; otherwise v is copied once.
	var client string
	if clean {
		client = s[start : start+n]
	} else {
		client = string(v)
	}
	return Result{Family: f, Client: client, Version: client[ver.start:ver.end]}, found
}

// span is a byte range of a normalised value; the zero span is empty.
type span struct{ start, end int }

// normalize writes the cleaned form of s into dst: leading and trailing
// white space dropped, each run of white space inside (CR and LF of a folded
// header included) turned into one space, control and formatting characters
// dropped, each run of invalid UTF-8 replaced with U+FFFD, and cut at a
// character boundary to fit dst. It reads s only as far as it needs.
//
// It returns the length n of the result and whether dst[:n] equals
// s[start:start+n], so the caller can use s's memory instead of copying.
func normalize(dst *[maxClient]byte, s string) (n, start int, clean bool) {
	w := writer{dst: dst, s: s, clean: true}
	for i := 0; i < len(s); {
		c := s[i]
		if ' ' < c && c < 0x7f {
			// A run of printable ASCII other than space, the bulk of any
			// real value: written in one copy.
			j := i + 1
			for j < len(s) && ' ' < s[j] && s[j] < 0x7f {
				j++
			}
			if !w.write(i, j, true) {
				break
			}
			i = j
			continue
		}
		if c < utf8.RuneSelf {
			if c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' {
				w.space()
			}
			// Otherwise a C0 control or DEL: dropped.
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			j := i + 1
			for j < len(s) {
				if r, sz := utf8.DecodeRuneInString(s[j:]); r != utf8.RuneError || sz != 1 {
					break
				}
				j++
			}
			if !w.replace(i, j) {
				return w.n, w.start, w.clean
			}
			i = j
			continue
		case unicode.IsSpace(r):
			w.space()
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r):
			// A C1 control, or an invisible formatting character (zero-width
			// space, bidirectional override …): dropped.
		default:
			if !w.write(i, i+size, false) {
				return w.n, w.start, w.clean
			}
		}
		i += size
	}
	return w.n, w.start, w.clean
}

// writer is normalize's output state.
type writer struct {
	dst     *[maxClient]byte
	s       string
	n       int  // bytes written to dst
	start   int  // in s, where the first written character came from
	end     int  // in s, just after the last written character
	started bool // a character has been written
	pending bool // white space seen since the last character written
	clean   bool // dst[:n] == s[start:end]
}

// space notes white space; it is written, as one space, only if a
// character follows.
func (w *writer) space() { w.pending = w.started }

// prepare makes room for need bytes of the characters that start at s[i],
// writing the pending space, and reports false when they do not fit.
func (w *writer) prepare(i, need int) bool {
	if w.pending {
		need++
	}
	if w.n+need > len(w.dst) {
		return false
	}
	switch {
	case !w.started:
		w.start, w.started = i, true
	case w.pending:
		// Verbatim only if the gap was exactly one space.
		if i-w.end != 1 || w.s[w.end] != ' ' {
			w.clean = false
		}
		w.dst[w.n] = ' '
		w.n++
		w.pending = false
	case i != w.end:
		w.clean = false // characters were dropped in between
	}
	return true
}

// write copies s[i:j], whole characters; a run of ASCII (split set) is cut
// to the room left. It reports false when something did not fit.
func (w *writer) write(i, j int, split bool) bool {
	fits := true
	if split {
		room := len(w.dst) - w.n
		if w.pending {
			room--
		}
		if room < j-i {
			if room <= 0 {
				return false
			}
			j, fits = i+room, false
		}
	}
	if !w.prepare(i, j-i) {
		return false
	}
	w.n += copy(w.dst[w.n:], w.s[i:j])
	w.end = j
	return fits
}

// replace writes U+FFFD for the invalid bytes s[i:j].
func (w *writer) replace(i, j int) bool {
	if !w.prepare(i, utf8.RuneLen(utf8.RuneError)) {
		return false
	}
	w.n += utf8.EncodeRune(w.dst[w.n:], utf8.RuneError)
	w.end = j
	w.clean = false
	return true
}
