package aprl

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxAddrLen is the longest address accepted. RFC 5321 section 4.5.3.1.3
// limits a path to 256 octets including the angle brackets.
const maxAddrLen = 254

// normalize returns the lookup key for addr: surrounding spaces, tabs and
// angle brackets trimmed and the address lower-cased. It reports false for
// something that is not an address (no '@', empty local part or domain,
// spaces, control characters, commas, invalid UTF-8, a leading '#').
// It does not allocate when addr is already normalised, so lookups of
// normalised addresses are allocation-free.
func normalize(addr string) (string, bool) {
	s := strings.Trim(addr, " \t<>")
	if s == "" || len(s) > maxAddrLen || s[0] == '#' {
		return "", false
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return "", false
	}
	upper, ascii := false, true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= utf8.RuneSelf:
			ascii = false
		case c <= ' ' || c == 0x7f || c == ',' || c == '<' || c == '>':
			return "", false
		case 'A' <= c && c <= 'Z':
			upper = true
		}
	}
	if ascii {
		if upper {
			s = strings.ToLower(s)
		}
		return s, true
	}
	if !utf8.ValidString(s) {
		return "", false
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return "", false
		}
	}
	s = strings.ToLower(s)
	if len(s) > maxAddrLen {
		return "", false
	}
	return s, true
}

// normalizeDomain returns the lower-cased domain d, or false when d is not a
// plausible domain (empty, '@', spaces, control characters, commas, an empty
// label).
func normalizeDomain(d string) (string, bool) {
	if d == "" || len(d) > maxAddrLen || d[0] == '.' || d[len(d)-1] == '.' || strings.Contains(d, "..") {
		return "", false
	}
	if strings.ContainsAny(d, "@,<>#") {
		return "", false
	}
	// Reuse the address rules for the character checks.
	n, ok := normalize("x@" + d)
	if !ok {
		return "", false
	}
	return n[2:], true
}
