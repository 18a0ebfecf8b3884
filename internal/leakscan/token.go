package leakscan

import (
	"math/bits"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Tiers order candidates (see Extract); lower is more likely.
const (
	tierLabel  = iota // the value after a label
	tierMixed3        // three or more character classes
	tierMixed2        // two classes, not an ordinary word
	tierOther
)

// entry is one distinct candidate while the message is scanned. val
// points into the scanned text; it is copied out at the end.
type entry struct {
	val     string
	tier    uint8
	quoted  bool
	size    uint8 // power-of-two size class of the text it came from
	variant uint8 // 0 softly trimmed, 1 fully trimmed, 2 as written
	pos     int32 // token number in message order
}

// compare orders entries most likely first.
func (e *entry) compare(f *entry) int {
	switch {
	case e.tier != f.tier:
		return int(e.tier) - int(f.tier)
	case e.quoted != f.quoted:
		if e.quoted {
			return 1
		}
		return -1
	case e.size != f.size:
		return int(e.size) - int(f.size)
	case e.pos != f.pos:
		if e.pos < f.pos {
			return -1
		}
		return 1
	}
	return int(e.variant) - int(f.variant)
}

// collector tokenises text segments and keeps the distinct candidates.
type collector struct {
	opt     Options
	entries []entry
	index   map[string]int32
	pos     int32
}

func newCollector(opt Options) *collector {
	return &collector{opt: opt, index: make(map[string]int32)}
}

// segment scans one text: the Subject, or a text part after decoding.
func (c *collector) segment(text string) {
	size := uint8(bits.Len(uint(len(text))))
	pending := false // a label ended a line; its value starts the next one
	for len(text) > 0 {
		line := text
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			text = ""
		}
		line = strings.TrimSuffix(line, "\r")
		quoted := false
		if rest, ok := stripQuote(line); ok {
			line, quoted = rest, true
		}
		if pending {
			if v := firstField(line); v != "" {
				c.label(v, quoted, size)
				pending = false
			}
		}
		if c.labels(line, quoted, size) {
			pending = true
		}
		start := 0
		for i := 0; i < len(line); {
			n := 1
			space := false
			if b := line[i]; b < utf8.RuneSelf {
				space = asciiSpace[b]
			} else {
				var r rune
				r, n = utf8.DecodeRuneInString(line[i:])
				space = unicode.IsSpace(r)
			}
			if space {
				if i > start {
					c.token(line[start:i], quoted, size)
				}
				start = i + n
			}
			i += n
		}
		if start < len(line) {
			c.token(line[start:], quoted, size)
		}
	}
}

// asciiSpace is unicode.IsSpace for ASCII.
var asciiSpace = [utf8.RuneSelf]bool{'\t': true, '\n': true, '\v': true, '\f': true, '\r': true, ' ': true}

// stripQuote removes the quote markers of a quoted reply line ("> ",
// ">> ", "> > "), with the white space before and after them.
func stripQuote(line string) (string, bool) {
	s := strings.TrimLeft(line, " \t")
	if !strings.HasPrefix(s, ">") {
		return line, false
	}
	for strings.HasPrefix(s, ">") {
		s = strings.TrimLeft(s[1:], " \t")
	}
	return s, true
}

// firstField returns the first white-space separated field of s.
func firstField(s string) string {
	s = strings.TrimLeftFunc(s, unicode.IsSpace)
	if i := strings.IndexFunc(s, unicode.IsSpace); i >= 0 {
		s = s[:i]
	}
	return s
}

// label adds the value found after a label, in its three forms.
func (c *collector) label(v string, quoted bool, size uint8) {
	c.pos++
	c.variants(v, fullTrim(v), tierLabel, quoted, size)
}

// variants adds the three forms of token t whose fully trimmed form is
// core, each once.
func (c *collector) variants(t, core string, tier uint8, quoted bool, size uint8) {
	soft := softTrim(t)
	c.add(soft, tier, quoted, size, 0)
	if core != soft {
		c.add(core, tier, quoted, size, 1)
	}
	if t != soft && t != core {
		c.add(t, tier, quoted, size, 2)
	}
}

// token adds one token in its three forms, unless it is a URL or an
// address.
func (c *collector) token(t string, quoted bool, size uint8) {
	c.pos++
	core := fullTrim(t)
	if core == "" || isURL(core) || isAddress(core) {
		return
	}
	n, word := classes(core)
	tier := uint8(tierOther)
	switch {
	case word:
	case n >= 3:
		tier = tierMixed3
	case n >= 2:
		tier = tierMixed2
	}
	c.variants(t, core, tier, quoted, size)
}

// add keeps v if it passes the filters, or improves the rank of an equal
// candidate seen before.
func (c *collector) add(v string, tier uint8, quoted bool, size, variant uint8) {
	if v == "" {
		return
	}
	// Cheap byte-length bounds before counting runes: a rune is 1 to 4
	// bytes (an invalid byte counts as one rune).
	if len(v) < c.opt.MinLen || len(v) > c.opt.MaxLen*utf8.UTFMax {
		return
	}
	if n := utf8.RuneCountInString(v); n < c.opt.MinLen || n > c.opt.MaxLen {
		return
	}
	e := entry{val: v, tier: tier, quoted: quoted, size: size, variant: variant, pos: c.pos}
	if i, ok := c.index[v]; ok {
		if e.compare(&c.entries[i]) < 0 {
			c.entries[i] = e
		}
		return
	}
	if n, _ := classes(v); n < c.opt.MinClasses {
		return
	}
	c.index[v] = int32(len(c.entries))
	c.entries = append(c.entries, e)
}

// result sorts, caps and copies out the candidates; cut reports that
// MaxCandidates dropped some.
func (c *collector) result() (cands []Candidate, cut bool) {
	es := c.entries
	slices.SortFunc(es, func(a, b entry) int { return a.compare(&b) })
	if len(es) > c.opt.MaxCandidates {
		es, cut = es[:c.opt.MaxCandidates], true
	}
	if len(es) == 0 {
		return nil, cut
	}
	total := 0
	for i := range es {
		total += len(es[i].val)
	}
	buf := make([]byte, 0, total)
	cands = make([]Candidate, len(es))
	for i := range es {
		start := len(buf)
		buf = append(buf, es[i].val...)
		cands[i].Value = buf[start:len(buf):len(buf)]
		cands[i].Source = SourceToken
		if es[i].tier == tierLabel {
			cands[i].Source = SourceLabel
		}
	}
	return cands, cut
}

// labels finds the label patterns in one line and adds their values. It
// reports whether a label and separator ended the line, so that the
// value is the first field of the next non-blank line.
//
// A label is a whole word (not preceded or followed by a letter or
// digit), any case, with flexible white space between the words of
// "mot de passe". The separator is a run of ":", "=" or "：", a dash
// ("-", "–", "—") with white space on at least one side (so that
// "pass-through" is not a label), or for the longer labels one of the
// words is/was/ist/est/es followed optionally by ":" or "=".
func (c *collector) labels(line string, quoted bool, size uint8) (pending bool) {
	for i := 0; i+1 < len(line); i++ {
		// The first two letters of the labels, as a cheap filter.
		switch string([]byte{line[i] | 0x20, line[i+1] | 0x20}) {
		case "pa", "pw", "mo", "co", "ke", "se", "wa":
		default:
			continue
		}
		if i > 0 {
			if r, _ := utf8.DecodeLastRuneInString(line[:i]); isAlnum(r) {
				continue
			}
		}
		for _, l := range labelWords {
			end, ok := matchLabel(line, i, l.words)
			if !ok {
				continue
			}
			j, ok := separator(line, end, l.prose)
			if !ok {
				break
			}
			v := firstField(line[j:])
			if v == "" {
				pending = true
			} else {
				c.label(v, quoted, size)
				pending = false
			}
			i = j - 1
			break
		}
	}
	return pending
}

// labelWords are the labels, lower case, split into words. prose allows
// the word separators ("password is X"); the short labels would match
// ordinary prose ("the pass is valid").
var labelWords = []struct {
	words []string
	prose bool
}{
	{[]string{"password"}, true},
	{[]string{"passwd"}, true},
	{[]string{"passphrase"}, true},
	{[]string{"passcode"}, true},
	{[]string{"pwd"}, false},
	{[]string{"pw"}, false},
	{[]string{"pass"}, false},
	{[]string{"passwort"}, true},
	{[]string{"kennwort"}, true},
	{[]string{"mot", "de", "passe"}, true},
	{[]string{"contraseña"}, true},
	{[]string{"contrasena"}, true},
	{[]string{"senha"}, true},
	{[]string{"wachtwoord"}, true},
}

// matchLabel matches the label words at line[i:], case-insensitively,
// and returns the index after them; the label must end a word.
func matchLabel(line string, i int, words []string) (int, bool) {
	for k, w := range words {
		if k > 0 {
			j := i
			for j < len(line) {
				r, n := utf8.DecodeRuneInString(line[j:])
				if !unicode.IsSpace(r) {
					break
				}
				j += n
			}
			if j == i {
				return 0, false
			}
			i = j
		}
		for _, wr := range w {
			if i >= len(line) {
				return 0, false
			}
			r, n := utf8.DecodeRuneInString(line[i:])
			if unicode.ToLower(r) != wr {
				return 0, false
			}
			i += n
		}
	}
	if i < len(line) {
		if r, _ := utf8.DecodeRuneInString(line[i:]); isAlnum(r) {
			return 0, false
		}
	}
	return i, true
}

// separator matches the separator after a label ending at line[i] and
// returns the index after it and the white space that follows.
func separator(line string, i int, prose bool) (int, bool) {
	j := skipSpace(line, i)
	spaceBefore := j > i
	k := skipSymbols(line, j)
	if k > j {
		return skipSpace(line, k), true
	}
	if j >= len(line) {
		return 0, false
	}
	r, n := utf8.DecodeRuneInString(line[j:])
	if r == '-' || r == '–' || r == '—' {
		after := skipSpace(line, j+n)
		if !spaceBefore && after == j+n {
			return 0, false
		}
		return after, true
	}
	if !prose || !spaceBefore {
		return 0, false
	}
	for _, w := range []string{"is", "was", "ist", "est", "es"} {
		if len(line)-j < len(w) || !strings.EqualFold(line[j:j+len(w)], w) {
			continue
		}
		end := j + len(w)
		if end < len(line) {
			if r, _ := utf8.DecodeRuneInString(line[end:]); !unicode.IsSpace(r) && r != ':' && r != '=' {
				continue
			}
		}
		return skipSpace(line, skipSymbols(line, skipSpace(line, end))), true
	}
	return 0, false
}

// skipSpace returns the index of the first non-space rune at or after i.
func skipSpace(s string, i int) int {
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if !unicode.IsSpace(r) {
			break
		}
		i += n
	}
	return i
}

// skipSymbols skips a run of ":", "=" and the full-width colon.
func skipSymbols(s string, i int) int {
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r != ':' && r != '=' && r != '：' {
			break
		}
		i += n
	}
	return i
}

func isAlnum(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r)
}

// isOpener and isCloser are the quotes and brackets trimmed around a
// token, "*" included for *emphasis*.
func isOpener(r rune) bool {
	switch r {
	case '"', '\'', '`', '(', '[', '{', '<', '«', '‹', '“', '‘', '„', '‚', '¿', '¡', '*':
		return true
	}
	return false
}

func isCloser(r rune) bool {
	switch r {
	case '"', '\'', '`', ')', ']', '}', '>', '»', '›', '”', '’', '*':
		return true
	}
	return false
}

// isStop is the sentence punctuation softTrim removes after a token;
// fullTrim also removes "!" and "?".
func isStop(r rune) bool {
	switch r {
	case '.', ',', ';', ':', '…':
		return true
	}
	return false
}

func isFullTrim(r rune) bool {
	return isOpener(r) || isCloser(r) || isStop(r) || r == '!' || r == '?'
}

func isSoftTrimRight(r rune) bool {
	return isCloser(r) || isStop(r)
}

// fullTrim removes quotes, brackets and sentence punctuation around t.
func fullTrim(t string) string {
	return strings.TrimFunc(t, isFullTrim)
}

// softTrim removes quotes and brackets around t and trailing ".,;:", but
// keeps a trailing "!" or "?": "Hunter2!." gives "Hunter2!".
func softTrim(t string) string {
	return strings.TrimRightFunc(strings.TrimLeftFunc(t, isOpener), isSoftTrimRight)
}

// classes counts the character classes in s (lower-case or uncased
// letters, upper-case letters, digits, anything else) and reports whether
// s is an ordinary word: letters only, all lower case, capitalised or all
// upper case, or such words joined by hyphens or apostrophes
// ("Marie-Claire", "don't").
func classes(s string) (n int, word bool) {
	var lower, upper, digit, other bool
	word = true
	start := true       // at the start of a word piece
	innerUpper := false // an upper-case letter after the first of a piece
	pieceLower := false
	prevJoin := true // the previous rune was a joiner (or the start)
	for _, r := range s {
		switch {
		case unicode.IsUpper(r):
			upper = true
			if !start {
				innerUpper = true
			}
			prevJoin = false
		case unicode.IsLetter(r):
			lower, pieceLower = true, true
			prevJoin = false
		case unicode.IsDigit(r):
			digit, word = true, false
		default:
			other = true
			if (r != '-' && r != '\'' && r != '’') || prevJoin {
				word = false
			}
			if innerUpper && pieceLower {
				word = false // iPhone, HeLLo
			}
			innerUpper, pieceLower, prevJoin = false, false, true
			start = true
			continue
		}
		start = false
	}
	if prevJoin || innerUpper && pieceLower {
		word = false
	}
	for _, b := range [...]bool{lower, upper, digit, other} {
		if b {
			n++
		}
	}
	return n, word
}

// isURL reports whether s is a URL with a scheme ("https://x",
// "mailto:x") or starts with "www.".
func isURL(s string) bool {
	if hasPrefixFold(s, "mailto:") || hasPrefixFold(s, "www.") {
		return true
	}
	i := strings.Index(s, "://")
	if i < 2 || len(s) == i+3 {
		return false
	}
	for k := 0; k < i; k++ {
		ch := s[k]
		switch {
		case isASCIILetter(ch):
		case k > 0 && ('0' <= ch && ch <= '9' || ch == '+' || ch == '-' || ch == '.'):
		default:
			return false
		}
	}
	return true
}

// isAddress reports whether s is shaped like an e-mail address:
// local@domain with a dotted domain of letters, digits and hyphens whose
// last label is two or more letters. A password of that shape is found
// only after a label.
func isAddress(s string) bool {
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || strings.IndexByte(s[:at], '@') >= 0 {
		return false
	}
	domain := s[at+1:]
	dot := strings.LastIndexByte(domain, '.')
	if dot <= 0 || len(domain)-dot-1 < 2 {
		return false
	}
	for k := 0; k < len(domain); k++ {
		ch := domain[k]
		switch {
		case isASCIILetter(ch) || '0' <= ch && ch <= '9' || ch == '-':
		case ch == '.' && k > 0 && domain[k-1] != '.':
		default:
			return false
		}
	}
	for k := dot + 1; k < len(domain); k++ {
		if !isASCIILetter(domain[k]) {
			return false
		}
	}
	return true
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
