package leakscan

import (
	"bytes"
	"html"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
)

// decodeTransfer undoes a Content-Transfer-Encoding (RFC 2045 6). An
// unknown encoding or broken base64 gives the raw bytes back.
func decodeTransfer(enc string, raw []byte) []byte {
	switch enc {
	case "base64":
		if dec, ok := decodeBase64(raw); ok {
			return dec
		}
	case "quoted-printable":
		return decodeQP(raw)
	}
	return raw
}

// b64 maps a byte to its base64 value (RFC 2045 6.8, Table 1), or 0xff.
var b64 = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

// decodeBase64 decodes base64 leniently: white space is ignored (RFC 2045
// 6.8: line breaks; some senders indent), padding may end a group in the
// middle (concatenated encodings) or be missing at the end. Any other
// byte outside the alphabet makes the body "not base64" and ok false.
func decodeBase64(src []byte) (out []byte, ok bool) {
	out = make([]byte, 0, len(src)/4*3+3)
	var q [4]byte
	n := 0
	flush := func() {
		switch n {
		case 2:
			out = append(out, q[0]<<2|q[1]>>4)
		case 3:
			out = append(out, q[0]<<2|q[1]>>4, q[1]<<4|q[2]>>2)
		}
		n = 0
	}
	for _, c := range src {
		v := b64[c]
		switch {
		case v != 0xff:
			q[n] = v
			n++
			if n == 4 {
				out = append(out, q[0]<<2|q[1]>>4, q[1]<<4|q[2]>>2, q[2]<<6|q[3])
				n = 0
			}
		case c == '=':
			flush()
		case c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v':
		default:
			return nil, false
		}
	}
	flush()
	return out, true
}

// decodeQP decodes quoted-printable (RFC 2045 6.7) and never fails: "="
// then optional blanks then a line break (or the end) is a soft line
// break, "=XX" with hex digits of either case is a byte, and any other
// "=" is kept literally, as rule (4) recommends.
func decodeQP(src []byte) []byte {
	out := make([]byte, 0, len(src))
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c != '=' {
			out = append(out, c)
			continue
		}
		j := i + 1
		for j < len(src) && (src[j] == ' ' || src[j] == '\t') {
			j++
		}
		switch {
		case j == len(src):
			i = j - 1
			continue
		case src[j] == '\n':
			i = j
			continue
		case src[j] == '\r' && (j+1 == len(src) || src[j+1] == '\n'):
			i = j
			if j+1 < len(src) {
				i = j + 1
			}
			continue
		}
		if i+2 < len(src) {
			if hi, lo := unhex(src[i+1]), unhex(src[i+2]); hi < 16 && lo < 16 {
				out = append(out, hi<<4|lo)
				i += 2
				continue
			}
		}
		out = append(out, '=')
	}
	return out
}

// unhex returns the value of a hex digit, or 0xff.
func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10
	}
	return 0xff
}

// decodeCharset converts text in the named charset to UTF-8. UTF-8,
// US-ASCII and no charset pass through; an unknown charset or a failing
// conversion gives the raw bytes back.
func decodeCharset(name string, b []byte) []byte {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "", "utf-8", "utf8", "us-ascii", "ascii":
		return b
	}
	r, err := charset.Reader(name, bytes.NewReader(b))
	if err != nil || r == nil {
		return b
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return b
	}
	return out
}

// cutText returns the first n bytes of b, fewer when that would split a
// UTF-8 sequence.
func cutText(b []byte, n int) []byte {
	if n <= 0 {
		return b[:0]
	}
	if n >= len(b) {
		return b
	}
	for k := n; k > 0 && k > n-utf8.UTFMax; k-- {
		if utf8.RuneStart(b[k]) {
			return b[:k]
		}
	}
	return b[:n]
}

// blockTags are the HTML elements that start a new line of text, so that
// table cells, paragraphs and list items do not run together.
var blockTags = map[string]bool{
	"address": true, "article": true, "aside": true, "blockquote": true,
	"body": true, "br": true, "caption": true, "center": true, "dd": true,
	"div": true, "dl": true, "dt": true, "fieldset": true, "footer": true,
	"form": true, "h1": true, "h2": true, "h3": true, "h4": true, "h5": true,
	"h6": true, "head": true, "header": true, "hr": true, "html": true,
	"legend": true, "li": true, "main": true, "nav": true, "ol": true,
	"option": true, "p": true, "pre": true, "section": true, "table": true,
	"tbody": true, "td": true, "tfoot": true, "th": true, "thead": true,
	"title": true, "tr": true, "ul": true,
}

// htmlText reduces HTML to text with a small tolerant tag stripper: tags
// and comments are removed, script and style content is dropped, block
// elements become line breaks (lines inside a blockquote are marked "> "
// like a quoted plain-text reply), source line breaks become spaces, and
// character references are decoded (html.UnescapeString). An
// unterminated tag or comment ends the text. A "<" not followed by a
// letter, "/", "!" or "?" is text.
func htmlText(b []byte) string {
	out := make([]byte, 0, len(b)/2+16)
	quoteDepth := 0
	newline := func() {
		out = append(out, '\n')
		if quoteDepth > 0 {
			out = append(out, "> "...)
		}
	}
	for i := 0; i < len(b); {
		c := b[i]
		if c != '<' {
			if c == '\n' || c == '\r' {
				c = ' '
			}
			out = append(out, c)
			i++
			continue
		}
		rest := b[i+1:]
		if bytes.HasPrefix(rest, []byte("!--")) {
			end := bytes.Index(rest[3:], []byte("-->"))
			if end < 0 {
				break
			}
			i += 1 + 3 + end + 3
			continue
		}
		if len(rest) == 0 || !(isASCIILetter(rest[0]) || rest[0] == '/' || rest[0] == '!' || rest[0] == '?') {
			out = append(out, '<')
			i++
			continue
		}
		end := bytes.IndexByte(rest, '>')
		if end < 0 {
			break
		}
		tag := rest[:end]
		i += 1 + end + 1
		closing := tag[0] == '/'
		if closing {
			tag = tag[1:]
		}
		var nameBuf [12]byte
		name := nameBuf[:0]
		for _, t := range tag {
			if !isASCIILetter(t) && !('0' <= t && t <= '9') {
				break
			}
			if len(name) == len(nameBuf) {
				name = name[:0] // longer than any name we look for
				break
			}
			name = append(name, t|0x20)
		}
		switch n := string(name); {
		case !closing && (n == "script" || n == "style") && !bytes.HasSuffix(tag, []byte("/")):
			// HTML raw text elements: everything up to the end tag is
			// not text.
			j := indexEndTag(b[i:], n)
			if j < 0 {
				i = len(b)
			} else {
				i += j
			}
		case n == "blockquote":
			if closing && quoteDepth > 0 {
				quoteDepth--
			} else if !closing {
				quoteDepth++
			}
			newline()
		case blockTags[n]:
			newline()
		}
	}
	return html.UnescapeString(string(out))
}

// indexEndTag returns the index of "</name" in b, any case, or -1.
func indexEndTag(b []byte, name string) int {
	for off := 0; ; {
		j := bytes.Index(b[off:], []byte("</"))
		if j < 0 {
			return -1
		}
		k := off + j + 2
		if len(b)-k >= len(name) && strings.EqualFold(string(b[k:k+len(name)]), name) {
			return off + j
		}
		off = k
	}
}

func isASCIILetter(c byte) bool {
	return 'a' <= c|0x20 && c|0x20 <= 'z'
}
