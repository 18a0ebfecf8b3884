package leakscan

import (
	"fmt"
	"io"
	"strings"
)

// Defaults for the zero [Options]. Each carries why it is that number.
const (
	// DefaultMaxBytes caps the decoded text scanned per message. A typed
	// message with its whole quoted history is far below 1 MiB; beyond it
	// we are reading newsletters and logs, and the scan must stay in the
	// low milliseconds on the milter path.
	DefaultMaxBytes = 1 << 20
	// DefaultMaxDepth caps MIME nesting. Real mail user agents nest at most
	// four or five levels (mixed > related > alternative, a forward or
	// two); 20 leaves room for forwards of forwards and stops a recursion
	// bomb.
	DefaultMaxDepth = 20
	// DefaultMaxParts caps the MIME entities visited, containers included.
	// Ordinary mail has under 30; 100 is generous and bounds the per-part
	// overhead of a message made of thousands of empty parts.
	DefaultMaxParts = 100
	// DefaultMinLen is the shortest candidate, in runes. Directories have
	// required at least 6 (most now 8) characters for decades, and shorter
	// strings are overwhelmingly ordinary words.
	DefaultMinLen = 6
	// DefaultMaxLen is the longest candidate, in runes. Passwords a person
	// types into a message are far shorter; longer tokens are URLs, base64,
	// hashes and tracking ids.
	DefaultMaxLen = 64
	// DefaultMinClasses keeps any non-empty string: the ordering, not the
	// filter, puts unlikely candidates last.
	DefaultMinClasses = 1
	// DefaultMaxCandidates bounds the result: every distinct token of a
	// long personal message fits, and callers with slow hash schemes only
	// ever test a prefix of the list anyway.
	DefaultMaxCandidates = 1000
)

// maxHeaderBytes caps one header block (the message's or a forwarded
// message's), as go-message does by default: no legitimate header comes
// near 1 MiB.
const maxHeaderBytes = 1 << 20

// Options bounds and tunes [Extract]. The zero value means the defaults;
// a zero or negative field takes its default.
type Options struct {
	// MaxBytes caps the decoded text scanned over the whole message: the
	// Subject and every text part after transfer decoding and charset
	// conversion (HTML is counted before it is reduced to text).
	// Default DefaultMaxBytes.
	MaxBytes int
	// MaxDepth caps MIME nesting; the message itself is depth 0.
	// Default DefaultMaxDepth.
	MaxDepth int
	// MaxParts caps the MIME entities visited, the message itself and
	// multipart containers included. Default DefaultMaxParts.
	MaxParts int
	// MinLen and MaxLen bound a candidate's length in runes (an invalid
	// UTF-8 byte counts as one). Defaults DefaultMinLen, DefaultMaxLen.
	MinLen, MaxLen int
	// MinClasses is the number of character classes a candidate must
	// contain, out of four: lower-case letters (and letters without case),
	// upper-case letters, digits, and everything else (symbols). Set 2 to
	// drop single-class tokens such as plain lower-case words and numbers
	// when only a few hash checks are affordable. Default DefaultMinClasses.
	MinClasses int
	// MaxCandidates caps the number of candidates returned (the most
	// likely are kept). Default DefaultMaxCandidates.
	MaxCandidates int
}

// withDefaults returns o with every unset field at its default.
func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MaxBytes, DefaultMaxBytes)
	def(&o.MaxDepth, DefaultMaxDepth)
	def(&o.MaxParts, DefaultMaxParts)
	def(&o.MinLen, DefaultMinLen)
	def(&o.MaxLen, DefaultMaxLen)
	def(&o.MinClasses, DefaultMinClasses)
	def(&o.MaxCandidates, DefaultMaxCandidates)
	return o
}

// Source says where a candidate was found.
type Source string

// Sources, stable values.
const (
	// SourceLabel is the value after a label such as "password:",
	// "pw=" or "mot de passe :".
	SourceLabel Source = "label"
	// SourceToken is any other white-space separated token.
	SourceToken Source = "token"
)

// Candidate is one string that might be the sender's password.
type Candidate struct {
	// Value is the candidate's bytes: UTF-8 when the text was (after
	// charset conversion), otherwise the part's raw bytes. Each Value is
	// the caller's own slice; zero it once compared.
	Value []byte
	// Source is SourceLabel when any occurrence followed a label.
	Source Source
}

// Result is what [Extract] found.
type Result struct {
	// Candidates are distinct and ordered most likely first (see Extract).
	Candidates []Candidate
	// Truncated reports that a bound cut the work short: some text was
	// not scanned (MaxBytes, MaxDepth, MaxParts, an oversized header) or
	// candidates were dropped (MaxCandidates).
	Truncated bool
	// Parts counts the MIME entities visited, the message itself and
	// multipart containers included.
	Parts int
	// TextBytes counts the decoded text bytes scanned (the Subject and the
	// text parts, as bounded by MaxBytes).
	TextBytes int
}

// Extract reads the message from r and returns the candidate passwords in
// its text. Only a failure to read r is an error; then Extract also
// returns what it found before the failure. Malformed MIME structure,
// unknown transfer encodings and charsets are scanned as well as they can
// be: a part that cannot be decoded is scanned as its raw bytes.
//
// Every white-space separated token of every text line yields up to three
// candidates, in this order: the token with quotes, brackets and trailing
// ".,;:" removed (so "Hunter2!." gives "Hunter2!"), the token fully
// trimmed of those and of "!?" too ("Hunter2"), and the token as written. Lines quoted with "> " are scanned without their quote
// markers. Tokens that are URLs with a scheme ("https://…", "mailto:…",
// "www.…") or shaped like an e-mail address (local@domain.tld) are
// dropped: such passwords exist but are rare, and addresses fill the
// headers of every quoted reply; they are still kept after a label. The
// value after a label (password, passwd, pwd, pw, pass, passwort,
// kennwort, mot de passe, contraseña, senha, wachtwoord, passphrase,
// passcode; any case; then ":", "=", a dash with white space on one side
// or the words is/was/ist/est/es) yields the same three forms, even when
// it starts the next line.
//
// The candidates are ordered so that a caller with a slow hash scheme can
// test only the first 20–50 within a time budget:
//
//  1. values after a label, in message order;
//  2. tokens with three or more character classes ("Hunter2!x");
//  3. tokens with two classes that are not ordinary words ("hunter22",
//     "iPhone"; "Hello" is an ordinary word);
//  4. everything else.
//
// Within each group, new text comes before quoted ("> ") lines, then
// tokens from shorter texts (the Subject, a short reply or note, by
// power-of-two size) before longer ones, then message order.
func Extract(r io.Reader, opt Options) (Result, error) {
	opt = opt.withDefaults()
	src := &recorder{r: r}
	w := &walker{
		opt:    opt,
		src:    src,
		budget: opt.MaxBytes,
		col:    newCollector(opt),
	}
	w.message(src, 0)
	res := Result{
		Truncated: w.truncated,
		Parts:     w.parts,
		TextBytes: w.textBytes,
	}
	var cut bool
	res.Candidates, cut = w.col.result()
	res.Truncated = res.Truncated || cut
	if src.err != nil {
		return res, fmt.Errorf("leakscan: reading message: %w", src.err)
	}
	return res, nil
}

// Text returns the readable text of a message (header block, blank line,
// body) for a reviewer's preview: the same walk Extract makes — every text
// part after transfer decoding and charset conversion, HTML reduced to
// text, quoted replies and nested messages included, under the same bounds
// — with the parts' text joined by newlines, at most limit bytes of it,
// valid UTF-8. The Subject is not part of it.
func Text(r io.Reader, limit int) string {
	if limit <= 0 {
		return ""
	}
	opt := Options{MaxBytes: limit}.withDefaults()
	var b strings.Builder
	src := &recorder{r: r}
	w := &walker{opt: opt, src: src, budget: limit, out: &b}
	w.message(src, 0)
	s := strings.ToValidUTF8(b.String(), "\uFFFD")
	for len(s) > limit {
		s = strings.ToValidUTF8(s[:limit], "")
	}
	return s
}

// recorder passes reads through and remembers the first read error other
// than io.EOF, so that Extract can tell a failing reader from a malformed
// message. After an error it returns that error on every read.
type recorder struct {
	r   io.Reader
	err error
}

func (rc *recorder) Read(p []byte) (int, error) {
	if rc.err != nil {
		return 0, rc.err
	}
	n, err := rc.r.Read(p)
	if err != nil && err != io.EOF {
		rc.err = err
	}
	return n, err
}
