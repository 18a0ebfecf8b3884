package milter

import (
	"strings"
	"unicode/utf8"
)

// envelopeAddress returns the mailbox of a MAIL FROM or RCPT TO argument:
// white space trimmed, one pair of angle brackets removed and an RFC 5321
// source route dropped. go-milter has already removed one pair of
// brackets; this also handles the argument forms it leaves alone
// (" <a@b>", "<@relay:a@b>").
func envelopeAddress(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '<' && s[len(s)-1] == '>' {
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	// RFC 5321 4.1.1.3 and C: a source route "@one,@two:" before the
	// mailbox must be accepted and ignored.
	if strings.HasPrefix(s, "@") {
		if i := strings.IndexByte(s, ':'); i >= 0 {
			s = strings.TrimSpace(s[i+1:])
		}
	}
	return s
}

// trimHeaderValue trims the white space around a header value. Folding
// inside the value is kept.
func trimHeaderValue(s string) string {
	return strings.Trim(s, " \t\r\n")
}

// defaultReason is sent when a Quarantine decision carries no reason;
// Postfix logs the reason, and an empty one reads like a bug.
const defaultReason = "held by mailbrake"

// quarantineReason makes r safe and short enough for SMFIR_QUARANTINE:
// valid UTF-8, control characters replaced with spaces, trimmed, at most
// MaxReasonLen bytes, cut on a character boundary, never empty.
func quarantineReason(r string) string {
	r = strings.ToValidUTF8(r, "?")
	r = strings.Map(func(c rune) rune {
		if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) {
			return ' '
		}
		return c
	}, r)
	r = strings.TrimSpace(r)
	if len(r) > MaxReasonLen {
		r = r[:MaxReasonLen]
		for len(r) > 0 && !utf8.ValidString(r) {
			r = r[:len(r)-1]
		}
		r = strings.TrimSpace(r)
	}
	if r == "" {
		return defaultReason
	}
	return r
}

// maxAddedHeaderValue bounds one added header value: far above any sane
// tag, well below the 64 KiB milter packet it must fit in.
const maxAddedHeaderValue = 16 << 10

// validHeaderName reports whether name can be sent as a header field name:
// printable ASCII without space or colon (RFC 5322 field-name).
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}
