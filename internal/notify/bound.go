package notify

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Size bounds applied to every event before it goes anywhere. They keep a
// mail readable and a syslog datagram deliverable, and stop a runaway
// caller from sending megabytes of evidence to the help desk.
const (
	maxLine          = 500  // characters per evidence line, step detail, URL fragment
	maxEvidenceLines = 50   // evidence lines per event; the rest is counted, not sent
	maxShort         = 64   // kind, severity, state, step name and status
	maxAccount       = 320  // an RFC 5321 path is at most 256 octets; room for odd account names
	maxReasons       = 20   // reasons per incident
	maxReason        = 100  // characters per reason
	maxSteps         = 50   // steps per incident; a playbook has at most eight
	maxNextSteps     = 4000 // characters of next steps (a few paragraphs)
	maxURL           = 2048 // characters of the admin UI link
)

// bounded is an event after sanitising: every single-line field is free
// of control characters and every field is within its size bound.
type bounded struct {
	Event
	evidenceOmitted int
}

// bound returns a sanitised copy of ev; ev itself is not changed.
func bound(ev Event) bounded {
	in := ev.Incident
	out := Incident{
		ID:       in.ID,
		Account:  oneLine(in.Account, maxAccount),
		Severity: oneLine(in.Severity, maxShort),
		State:    oneLine(in.State, maxShort),
		Opened:   in.Opened,
		Updated:  in.Updated,
		URL:      oneLine(in.URL, maxURL),
	}
	for i, r := range in.Reasons {
		if i == maxReasons {
			out.Reasons = append(out.Reasons, "…")
			break
		}
		out.Reasons = append(out.Reasons, oneLine(r, maxReason))
	}
	b := bounded{}
	for i, e := range in.Evidence {
		if i == maxEvidenceLines {
			b.evidenceOmitted = len(in.Evidence) - maxEvidenceLines
			break
		}
		out.Evidence = append(out.Evidence, oneLine(e, maxLine))
	}
	for i, s := range in.Steps {
		if i == maxSteps {
			break
		}
		out.Steps = append(out.Steps, Step{
			Name:   oneLine(s.Name, maxShort),
			Status: oneLine(s.Status, maxShort),
			Detail: oneLine(s.Detail, maxLine),
			At:     s.At,
		})
	}
	b.Event = Event{
		Kind:      oneLine(ev.Kind, maxShort),
		Incident:  out,
		NextSteps: multiLine(ev.NextSteps, maxNextSteps),
	}
	return b
}

// oneLine makes s safe for a header, a syslog field or a single body
// line: invalid UTF-8 and every control or line-separating character
// become a space (so CR/LF can never start a new header), runs of spaces
// collapse, and the result is cut to max characters, "…" marking a cut.
func oneLine(s string, max int) string {
	if s == "" {
		return ""
	}
	var b strings.Builder
	b.Grow(min(len(s), 4*max))
	n := 0
	pending := false // a space is due before the next visible character
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		if unsafeRune(r) || unicode.IsSpace(r) {
			pending = b.Len() > 0
			continue
		}
		need := 1
		if pending {
			need = 2
		}
		if n+need > max {
			b.WriteString("…")
			return b.String()
		}
		if pending {
			b.WriteByte(' ')
			pending = false
		}
		b.WriteRune(r)
		n += need
	}
	return b.String()
}

// multiLine keeps line breaks (normalised to "\n") but otherwise treats s
// like oneLine, cutting it to max characters.
func multiLine(s string, max int) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	lines := strings.Split(s, "\n")
	var b strings.Builder
	left := max
	for i, l := range lines {
		l = oneLine(l, maxLine*4)
		if i > 0 {
			b.WriteByte('\n')
		}
		if c := utf8.RuneCountInString(l); c > left {
			b.WriteString(oneLine(l, left))
			break
		} else {
			left -= c
		}
		b.WriteString(l)
	}
	return strings.TrimRight(b.String(), "\n ")
}

// unsafeRune reports characters that must not reach a header or a log
// line: C0 and C1 controls, DEL, and the Unicode line and paragraph
// separators.
func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || r == '\uFEFF'
}
