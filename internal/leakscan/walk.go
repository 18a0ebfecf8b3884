package leakscan

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math"
	"mime"
	"strings"

	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/textproto"
)

// walker visits the MIME tree of one message under the Options' bounds.
type walker struct {
	opt       Options
	src       *recorder
	col       *collector
	budget    int // decoded bytes left to scan
	parts     int
	textBytes int
	truncated bool
	stop      bool // a bound or a read error ends the walk
	// out, when set, receives the decoded text instead of the collector
	// (Text), and the Subject is skipped.
	out *strings.Builder
}

// message reads a header block from r, scans its Subject and walks the
// entity it heads.
func (w *walker) message(r io.Reader, depth int) {
	if w.stop || depth > w.opt.MaxDepth {
		w.truncated = w.truncated || depth > w.opt.MaxDepth
		return
	}
	h, body, ok := readHeader(r)
	for _, s := range h.Values("Subject") {
		if w.out == nil {
			w.subject(s)
		}
	}
	if !ok {
		w.truncated = true
		return
	}
	w.entity(h, body, depth)
}

// subject scans one Subject value, decoded from RFC 2047 when it can be.
func (w *walker) subject(raw string) {
	s := raw
	dec := mime.WordDecoder{CharsetReader: charset.Reader}
	if d, err := dec.DecodeHeader(raw); err == nil {
		s = d
	}
	w.scan(string(w.take([]byte(s))))
}

// entity walks one MIME entity with header h and undecoded body.
func (w *walker) entity(h textproto.Header, body io.Reader, depth int) {
	if w.stop || w.src.err != nil {
		w.stop = true
		return
	}
	if w.parts >= w.opt.MaxParts {
		w.truncated, w.stop = true, true
		return
	}
	w.parts++
	if depth > w.opt.MaxDepth {
		w.truncated = true
		return
	}
	mt, params := contentType(h.Get("Content-Type"))
	switch {
	case strings.HasPrefix(mt, "multipart/"):
		boundary := params["boundary"]
		if boundary == "" {
			// RFC 2046 5.1.1 requires the boundary; without it the parts
			// cannot be found, so scan the body as it stands.
			w.text(h, body, false, params["charset"])
			return
		}
		// RFC 2045 6.4: a multipart entity has no transfer encoding
		// other than the identity ones; like go-message, ignore any.
		mr := textproto.NewMultipartReader(body, boundary)
		for !w.stop {
			p, err := mr.NextPart()
			if err != nil {
				// io.EOF, or a broken structure: keep what was scanned.
				break
			}
			w.entity(p.Header, p, depth+1)
		}
	case mt == "message/rfc822" || mt == "message/global":
		enc := transferEncoding(h)
		if enc == "" {
			w.message(body, depth+1)
			return
		}
		// Non-conforming (RFC 2046 5.2.1) but seen in the wild.
		raw, cut := readAtMost(body, w.rawCap())
		w.truncated = w.truncated || cut
		w.message(bytes.NewReader(decodeTransfer(enc, raw)), depth+1)
	case strings.HasPrefix(mt, "text/") || mt == "application/xhtml+xml":
		isHTML := mt == "text/html" || mt == "application/xhtml+xml"
		w.text(h, body, isHTML, params["charset"])
	}
}

// text scans one text part.
func (w *walker) text(h textproto.Header, body io.Reader, isHTML bool, charset string) {
	if w.budget <= 0 {
		w.truncated, w.stop = true, true
		return
	}
	raw, cut := readAtMost(body, w.rawCap())
	w.truncated = w.truncated || cut
	dec := decodeTransfer(transferEncoding(h), raw)
	dec = decodeCharset(charset, dec)
	dec = w.take(dec)
	if isHTML {
		w.scan(htmlText(dec))
	} else {
		w.scan(string(dec))
	}
}

// scan hands decoded text to the collector.
func (w *walker) scan(text string) {
	if text == "" {
		return
	}
	if w.out != nil {
		if w.out.Len() > 0 {
			w.out.WriteByte('\n')
		}
		w.out.WriteString(text)
		return
	}
	w.col.segment(text)
}

// take charges b against the byte budget and returns the part of it that
// may be scanned, cut on a UTF-8 boundary where possible.
func (w *walker) take(b []byte) []byte {
	if len(b) > w.budget {
		b = cutText(b, w.budget)
		w.truncated = true
	}
	w.budget -= len(b)
	w.textBytes += len(b)
	return b
}

// rawCap is how many undecoded bytes of a part are read: enough to yield
// the remaining budget through the most expanding encodings
// (quoted-printable is at most 3 bytes per decoded byte), and 4 KiB more
// for line breaks and padding.
func (w *walker) rawCap() int64 {
	return int64(w.budget)*4 + 4096
}

// readAtMost reads up to n bytes of r and reports whether r had more.
// Read errors end the read; the recorder keeps the ones that matter.
func readAtMost(r io.Reader, n int64) ([]byte, bool) {
	b, _ := io.ReadAll(io.LimitReader(r, n+1))
	if int64(len(b)) > n {
		return b[:n], true
	}
	return b, false
}

// transferEncoding returns the lower-cased Content-Transfer-Encoding, or ""
// for the identity encodings (RFC 2045 6.2: 7bit, 8bit, binary).
func transferEncoding(h textproto.Header) string {
	enc := strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding")))
	switch enc {
	case "7bit", "8bit", "binary":
		return ""
	}
	return enc
}

// contentType returns the lower-cased media type and parameters of a
// Content-Type value. RFC 2045 5.2: a missing or unparsable type is
// text/plain. Malformed parameters are read loosely rather than lost, so
// that a sloppy boundary or charset still works.
func contentType(v string) (string, map[string]string) {
	if strings.TrimSpace(v) == "" {
		return "text/plain", nil
	}
	mt, params, err := mime.ParseMediaType(v)
	if err == nil {
		return mt, params
	}
	mt, rest, _ := strings.Cut(v, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	if t, sub, ok := strings.Cut(mt, "/"); !ok || t == "" || sub == "" {
		mt = "text/plain"
	}
	return mt, looseParams(rest)
}

// looseParams parses "; key=value; key="value"" without failing: keys
// lower-cased, one pair of quotes removed, later duplicates ignored.
func looseParams(s string) map[string]string {
	params := make(map[string]string)
	for _, kv := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		v = strings.TrimSpace(v)
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		if _, dup := params[k]; k != "" && !dup {
			params[k] = v
		}
	}
	return params
}

// errHeaderTooBig is returned by headerReader past maxHeaderBytes.
var errHeaderTooBig = errors.New("header exceeds maximum size")

// headerReader limits the bytes read while the header is parsed; n is set
// to unlimited once the header is read.
type headerReader struct {
	r io.Reader
	n int64
}

func (hr *headerReader) Read(p []byte) (int, error) {
	if hr.n <= 0 {
		return 0, errHeaderTooBig
	}
	if int64(len(p)) > hr.n {
		p = p[:hr.n]
	}
	n, err := hr.r.Read(p)
	hr.n -= int64(n)
	return n, err
}

// maxBadHeaderLines is how many malformed header lines readHeader steps
// over while still parsing fields; after that it only looks for the end
// of the header. Real damage is a line or two; the cap keeps a header of
// a million one-byte lines cheap.
const maxBadHeaderLines = 16

// readHeader reads a header block and returns it with a reader positioned
// at the body. It is tolerant: an mbox "From " line is skipped, and a
// malformed line (RFC 5322 2.2 field syntax) is dropped and parsing goes
// on, keeping the fields before and after it. ok is false when the header
// exceeds maxHeaderBytes: the body cannot be found then.
func readHeader(r io.Reader) (h textproto.Header, body io.Reader, ok bool) {
	hr := &headerReader{r: r, n: maxHeaderBytes}
	br := bufio.NewReader(hr)
	if p, err := br.Peek(5); err == nil && string(p) == "From " {
		skipLine(br)
	}
	for bad := 0; ; bad++ {
		part, err := textproto.ReadHeader(br)
		if h.Len() == 0 {
			h = part
		} else {
			for f := part.Fields(); f.Next(); {
				h.Add(f.Key(), f.Value())
			}
		}
		if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if hr.n <= 0 || errors.Is(err, errHeaderTooBig) {
			return h, nil, false
		}
		// A malformed line was consumed; go on with the next ones.
		if bad == maxBadHeaderLines {
			for {
				line, err := skipLine(br)
				if err != nil || line {
					break
				}
			}
			if hr.n <= 0 {
				return h, nil, false
			}
			break
		}
	}
	hr.n = math.MaxInt64
	return h, br, true
}

// skipLine consumes one line, however long, and reports whether it was
// empty (the end of a header block).
func skipLine(br *bufio.Reader) (empty bool, err error) {
	n := 0
	for {
		b, err := br.ReadSlice('\n')
		n += len(b)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			return false, err
		}
		return n == 1 || n == 2 && b[0] == '\r', nil
	}
}
