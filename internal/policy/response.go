package policy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Response is the reply to one request: an action from access(5), sent as
// "action=<Action>" and an empty line (SMTPD_POLICY_README: "The server
// reply is one name=value attribute and it, too, is terminated by an empty
// line"). Build it with the constructors below, which keep any text on one
// line; a Response written by hand must pass Validate or the Server
// treats it as a handler error.
type Response struct {
	Action string
}

// MaxTextLength bounds the free text of an action. An SMTP reply line is
// at most 512 octets (RFC 5321 section 4.5.3.1.5), and Postfix puts the
// reply code, the enhanced status code and "<address>: Recipient address
// rejected: " before the text; 256 keeps a reply for a typical address
// within that line.
const MaxTextLength = 256

// maxActionLength bounds a whole action: one SMTP reply line (RFC 5321
// section 4.5.3.1.5).
const maxActionLength = 512

// Dunno returns DUNNO: no decision, Postfix goes on with the next
// restriction.
func Dunno() Response { return Response{Action: "DUNNO"} }

// OK returns OK: accept, skipping the rest of this restriction list.
func OK() Response { return Response{Action: "OK"} }

// Hold returns "HOLD text": Postfix puts the whole message in the hold
// queue and logs text. Used at END-OF-MESSAGE it still takes effect.
func Hold(text string) Response { return withText("HOLD", text) }

// Defer returns "DEFER text": a temporary rejection (4.7.1 unless text
// starts with an enhanced status code).
func Defer(text string) Response { return withText("DEFER", text) }

// DeferIfPermit returns "DEFER_IF_PERMIT text": a temporary rejection
// unless a later restriction rejects the request permanently.
func DeferIfPermit(text string) Response { return withText("DEFER_IF_PERMIT", text) }

// Reject returns "REJECT text": a permanent rejection (5.7.1 unless text
// starts with an enhanced status code).
func Reject(text string) Response { return withText("REJECT", text) }

// Warn returns "WARN text": Postfix logs text and goes on.
func Warn(text string) Response { return withText("WARN", text) }

// Reply returns "NNN text", a rejection with the given SMTP reply code.
// The code must be 4NN or 5NN (421 and 521 also disconnect the client);
// any other code gives a Response that fails Validate.
func Reply(code int, text string) Response { return withText(strconv.Itoa(code), text) }

// Prepend returns "PREPEND name: value", which adds a header to the
// message. Postfix does not allow it in smtpd_end_of_data_restrictions;
// the Server answers DUNNO instead when a handler returns it at
// END-OF-MESSAGE. name must be a header field name (printable ASCII
// without ":"), or the Response fails Validate.
func Prepend(name, value string) Response {
	return withText("PREPEND "+name+":", value)
}

// withText appends sanitized text to an action keyword.
func withText(keyword, text string) Response {
	text = sanitizeText(text)
	if text == "" {
		return Response{Action: keyword}
	}
	return Response{Action: keyword + " " + text}
}

// sanitizeText makes text safe for one reply line: each run of control
// characters (CR and LF among them) becomes one space, anything outside
// printable ASCII becomes "?", surrounding space is trimmed and the result
// is cut to MaxTextLength bytes.
func sanitizeText(text string) string {
	if cleanText(text) {
		return text
	}
	var b strings.Builder
	b.Grow(min(len(text), MaxTextLength))
	space := false
	for _, r := range text {
		switch {
		case r < 0x20 || r == 0x7f:
			if !space {
				b.WriteByte(' ')
				space = true
			}
			continue
		case r > 0x7e:
			b.WriteByte('?')
		default:
			b.WriteByte(byte(r))
		}
		space = false
	}
	s := strings.TrimSpace(b.String())
	if len(s) > MaxTextLength {
		s = strings.TrimSpace(s[:MaxTextLength])
	}
	return s
}

// cleanText reports whether sanitizeText would return text unchanged.
func cleanText(text string) bool {
	if len(text) > MaxTextLength {
		return false
	}
	if text != "" && (text[0] == ' ' || text[len(text)-1] == ' ') {
		return false
	}
	for i := 0; i < len(text); i++ {
		if c := text[i]; c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// keyword returns the first word of an action.
func (r Response) keyword() string {
	k, _, _ := strings.Cut(r.Action, " ")
	return k
}

// Validate reports whether r can be sent: a non-empty action of at most
// 512 bytes on one line without control characters, a numeric code of the
// form 4NN or 5NN, and for PREPEND a "name: value" header. Other keywords
// are not checked, since access(5) also allows restriction names.
func (r Response) Validate() error {
	a := r.Action
	switch {
	case a == "":
		return errors.New("policy: empty action")
	case len(a) > maxActionLength:
		return fmt.Errorf("policy: action longer than %d bytes", maxActionLength)
	case !validTextString(a) || strings.ContainsRune(a, '\t'):
		return fmt.Errorf("policy: action: %w", ErrInvalidText)
	case a[0] == ' ':
		return errors.New("policy: action starts with a space")
	}
	k := r.keyword()
	if k[0] >= '0' && k[0] <= '9' {
		// access(5): "4NN text", "5NN text".
		if len(k) != 3 || k[0] != '4' && k[0] != '5' || !isDigit(k[1]) || !isDigit(k[2]) {
			return fmt.Errorf("policy: reply code %q is not 4NN or 5NN", k)
		}
	}
	if strings.EqualFold(k, "PREPEND") {
		name, _, ok := strings.Cut(strings.TrimPrefix(a[len(k):], " "), ":")
		if !ok || !headerName(name) {
			return errors.New(`policy: PREPEND needs "name: value"`)
		}
	}
	return nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// headerName reports whether s is a header field name (RFC 5322 section
// 3.6.8: printable ASCII except ":").
func headerName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < '!' || c > '~' || c == ':' {
			return false
		}
	}
	return true
}

// isPrepend reports whether r is a PREPEND action.
func (r Response) isPrepend() bool { return strings.EqualFold(r.keyword(), "PREPEND") }
