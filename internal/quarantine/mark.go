package quarantine

import (
	"strings"
	"unicode"
)

// MarkHeader is the header the milter adds to every message it puts on
// hold: the queue ID, the account and the reasons, so that a hold whose
// record was never written (mailbrake killed before its writer ran, the
// store unwritable) is recovered from the hold queue with its reasons
// (Service.Sync). The queue ID in it must be the message's own, which a
// sender does not know in advance; and the milter removes every copy a
// client wrote (translate.OwnHeaders), so the queue file holds the
// milter's alone.
const MarkHeader = "X-Mailbrake-Hold"

// maxMarkReasons bounds the reasons read from a mark.
const maxMarkReasons = 32

// FormatMark returns the mark's value: "QUEUEID account=A reasons=R1,R2".
// Values are cleaned of white space and commas so the mark parses back.
func FormatMark(queueID, account string, reasons []string) string {
	clean := func(s string) string {
		return strings.Map(func(r rune) rune {
			// Every space ParseMark's strings.Fields splits on (U+0085,
			// U+00A0, U+2028 …), not only ASCII's.
			if r <= ' ' || r == ',' || r == 0x7f || unicode.IsSpace(r) {
				return -1
			}
			return r
		}, s)
	}
	rs := make([]string, 0, len(reasons))
	for _, r := range reasons {
		if c := clean(r); c != "" {
			rs = append(rs, c)
		}
	}
	return clean(queueID) + " account=" + clean(account) + " reasons=" + strings.Join(rs, ",")
}

// ParseMark reads a mark's value. ok is false when it is not one.
func ParseMark(v string) (queueID, account string, reasons []string, ok bool) {
	f := strings.Fields(v)
	if len(f) < 2 || !ValidQueueID(f[0]) {
		return "", "", nil, false
	}
	queueID = f[0]
	for _, kv := range f[1:] {
		k, val, found := strings.Cut(kv, "=")
		if !found {
			continue
		}
		switch k {
		case "account":
			account = val
		case "reasons":
			for _, r := range strings.Split(val, ",") {
				if r != "" && len(reasons) < maxMarkReasons {
					reasons = append(reasons, r)
				}
			}
		}
	}
	return queueID, account, reasons, true
}

// markIn returns the mark naming queueID among a header block's lines
// ("Name: value", folded lines continued with white space), the last one.
func markIn(headers, queueID string) (account string, reasons []string, ok bool) {
	var cur string
	flush := func() {
		name, val, found := strings.Cut(cur, ":")
		if !found || !strings.EqualFold(strings.TrimSpace(name), MarkHeader) {
			return
		}
		if q, a, rs, good := ParseMark(val); good && q == queueID {
			account, reasons, ok = a, rs, true
		}
	}
	for _, line := range strings.Split(strings.ReplaceAll(headers, "\r\n", "\n"), "\n") {
		if line != "" && (line[0] == ' ' || line[0] == '\t') {
			cur += " " + strings.TrimSpace(line)
			continue
		}
		flush()
		cur = line
	}
	flush()
	return account, reasons, ok
}
