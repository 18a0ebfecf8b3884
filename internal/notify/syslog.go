package notify

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// sdID is the RFC 5424 SD-ID of mailbrake's structured data. An SD-ID
// without "@" is reserved for IANA; 32473 is the private enterprise
// number RFC 5612 sets aside for documentation, used until mailbrake has
// its own.
const sdID = "mailbrake@32473"

// Syslog message bounds. RFC 5426 section 3.2: a receiver should take
// 2048-octet UDP datagrams; TCP and unix sockets take more.
const (
	maxSyslogUDP    = 2048
	maxSyslogStream = 8192
	syslogTimeout   = 5 * time.Second
)

func (n *Notifier) syslogTarget() string {
	network := n.s.syslog.network
	if network == "unixgram" {
		network = "unix"
	}
	return network + "://" + n.s.syslog.addr
}

func (n *Notifier) sendSyslog(ctx context.Context, b bounded) ChannelResult {
	r := ChannelResult{Channel: ChannelSyslog, Recipients: []string{n.syslogTarget()}}
	if !n.allow(ChannelSyslog, b) {
		r.Skipped = SkipRateLimited
		return r
	}
	limit := maxSyslogStream
	if n.s.syslog.network == "udp" {
		limit = maxSyslogUDP
	}
	line := formatSyslog(syslogHeader{
		facility: n.s.syslog.facility,
		time:     n.now(),
		hostname: n.hostname,
		app:      n.s.syslog.tag,
		pid:      n.pid,
	}, b, limit)
	if n.s.syslog.network == "tcp" {
		// RFC 6587 section 3.4.1, octet counting: "LEN SP MSG".
		line = append([]byte(strconv.Itoa(len(line))+" "), line...)
	}
	d := net.Dialer{Timeout: syslogTimeout}
	conn, err := d.DialContext(ctx, n.s.syslog.network, n.s.syslog.addr)
	if err != nil {
		r.Err = fmt.Errorf("connecting to %s: %w", n.syslogTarget(), err)
		return r
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(syslogTimeout))
	if _, err := conn.Write(line); err != nil {
		r.Err = fmt.Errorf("writing to %s: %w", n.syslogTarget(), err)
		return r
	}
	r.Sent = true
	return r
}

type syslogHeader struct {
	facility int
	time     time.Time
	hostname string
	app      string
	pid      int
}

// syslogSeverity maps an event to an RFC 5424 severity: a failed step is
// an error, a new or running incident a warning (critical when the
// incident is), the end of one a notice.
func syslogSeverity(b bounded) int {
	switch b.Kind {
	case KindStepFailed:
		return 3
	case KindIncidentResolved, KindIncidentDismissed:
		return 5
	}
	if strings.EqualFold(b.Incident.Severity, "critical") {
		return 2
	}
	return 4
}

// formatSyslog renders one RFC 5424 message of at most limit octets,
// without trailing newline:
//
//	<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [mailbrake@32473 …] MSG
//
// The structured data carries the incident id, account, kind, severity,
// state and reasons; MSG is a one-line summary without evidence. Values
// are bounded so the header and structured data always fit and only MSG
// is cut.
func formatSyslog(h syslogHeader, b bounded, limit int) []byte {
	in := b.Incident
	var s strings.Builder
	pri := h.facility*8 + syslogSeverity(b)
	fmt.Fprintf(&s, "<%d>1 %s %s %s %d %s [%s", pri,
		h.time.UTC().Format("2006-01-02T15:04:05.000000Z07:00"),
		nilValue(h.hostname, 255), nilValue(h.app, 48), h.pid, nilValue(b.Kind, 32), sdID)
	param := func(name, value string, max int) {
		s.WriteString(" " + name + `="`)
		s.WriteString(sdEscape(truncBytes(oneLine(value, max), max)))
		s.WriteString(`"`)
	}
	param("incident", strconv.FormatInt(in.ID, 10), 20)
	param("account", in.Account, 200)
	param("kind", b.Kind, 64)
	param("severity", in.Severity, 64)
	param("state", in.State, 64)
	param("reasons", strings.Join(in.Reasons, ","), 300)
	s.WriteString("] ")

	msg := fmt.Sprintf("incident %d on %s: %s, severity %s, state %s; reasons: %s", in.ID, in.Account, b.Kind,
		orDash(in.Severity), orDash(in.State), orDash(strings.Join(in.Reasons, ", ")))
	if len(in.Steps) > 0 {
		steps := make([]string, len(in.Steps))
		for i, st := range in.Steps {
			steps[i] = st.Name + " " + st.Status
		}
		msg += "; steps: " + strings.Join(steps, ", ")
	}
	msg = oneLine(msg, limit)
	if !isASCII(msg) {
		// RFC 5424 section 6.4: MSG in UTF-8 starts with a BOM.
		msg = "\uFEFF" + msg
	}
	room := limit - s.Len()
	s.WriteString(truncBytes(msg, max(room, 0)))
	return []byte(s.String())
}

// nilValue is s when it is a valid RFC 5424 header field of at most max
// printable ASCII characters, the NILVALUE "-" otherwise.
func nilValue(s string, max int) string {
	if !printUSASCII(s, max) {
		return "-"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// sdEscape escapes a PARAM-VALUE (RFC 5424 section 6.3.3).
func sdEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, `]`, `\]`).Replace(s)
}

// truncBytes cuts s to at most max bytes at a character boundary, ending
// a cut string with "…".
func truncBytes(s string, max int) string {
	if len(s) <= max {
		return s
	}
	const ell = "…"
	if max < len(ell) {
		return ""
	}
	cut := max - len(ell)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ell
}
