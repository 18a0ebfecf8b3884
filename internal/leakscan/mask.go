package leakscan

import (
	"html"
	"slices"
	"strings"
)

// MaskToken replaces a secret in masked text. It has a fixed length so
// that it does not reveal the secret's length.
const MaskToken = "••••••••"

// minPartial is the shortest piece of a secret masked where the text is
// cut through it (a preview ending "…password: Hunt"). Shorter pieces
// would mask ordinary word endings and reveal almost nothing.
const minPartial = 3

// Mask returns text with every occurrence of each secret replaced by
// [MaskToken], so that a matched password never reaches a preview, the
// store or the UI. Matching is exact and case-sensitive, on bytes.
//
// Besides the secret as given, Mask replaces its HTML-escaped form and its
// quoted-printable form (RFC 2045 6.7, without soft line breaks) when they
// differ, because previews are often undecoded body text. A secret cut by
// the end of text (or by its start) is masked too when at least 3 bytes
// of it remain. Overlapping or adjacent matches become one MaskToken.
// Empty secrets are ignored; a very short secret masks every occurrence,
// so callers pass only the secrets that matched.
func Mask(text string, secrets [][]byte) string {
	type span struct{ a, b int }
	var spans []span
	mark := func(s string) {
		if s == "" {
			return
		}
		for off := 0; off < len(text); {
			i := strings.Index(text[off:], s)
			if i < 0 {
				break
			}
			// Occurrences overlapping this one are cut by its mask and
			// cannot survive whole, so the search goes on after it.
			spans = append(spans, span{off + i, off + i + len(s)})
			off += i + len(s)
		}
		// The longest proper prefix of s that ends text, and the longest
		// proper suffix that starts it.
		for k := min(len(s)-1, len(text)); k >= minPartial; k-- {
			if strings.HasSuffix(text, s[:k]) {
				spans = append(spans, span{len(text) - k, len(text)})
				break
			}
		}
		for k := min(len(s)-1, len(text)); k >= minPartial; k-- {
			if strings.HasPrefix(text, s[len(s)-k:]) {
				spans = append(spans, span{0, k})
				break
			}
		}
	}
	for _, sec := range secrets {
		if len(sec) == 0 {
			continue
		}
		s := string(sec)
		mark(s)
		if e := html.EscapeString(s); e != s {
			mark(e)
		}
		if q := qpForm(s); q != s {
			mark(q)
		}
	}
	if len(spans) == 0 {
		return text
	}
	slices.SortFunc(spans, func(x, y span) int { return x.a - y.a })
	var b strings.Builder
	b.Grow(len(text))
	last := 0 // text[:last] is written or masked
	for i := 0; i < len(spans); {
		a, end := spans[i].a, spans[i].b
		for i++; i < len(spans) && spans[i].a <= end; i++ {
			end = max(end, spans[i].b)
		}
		b.WriteString(text[last:a])
		b.WriteString(MaskToken)
		last = end
	}
	b.WriteString(text[last:])
	return b.String()
}

// qpForm is s encoded as quoted-printable without line breaks: "=", bytes
// outside printable ASCII and control characters (tab excepted) as =XX.
func qpForm(s string) string {
	const hexdigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '=' || c > '~' || c < ' ' && c != '\t' {
			b.WriteByte('=')
			b.WriteByte(hexdigits[c>>4])
			b.WriteByte(hexdigits[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
