package replay

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// A Postfix mail log line: "Mon DD HH:MM:SS host TAG/service[pid]: QID: text"
// (syslog), or with an RFC 3339 timestamp (maillog_file, rsyslog). TAG is
// syslog_name: postfix, postfix/submission, postfix-out, Zimbra's postfix…
var (
	logLineRe  = regexp.MustCompile(`^(\w{3} +\d{1,2} \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT[0-9:.]+(?:Z|[+-]\d\d:?\d\d)?) \S+ [\w.-]+(?:/[\w.-]+)*/(\w+)\[\d+\]: ([0-9A-Za-z]{6,32}): (.*)$`)
	kvRe       = regexp.MustCompile(`([\w-]+)=(<[^>]*>|[^,\s]*)`)
	maxLogLine = 64 << 10
)

// MaxInFlight bounds the messages a log scan keeps at once: a message
// whose queue file was never logged as removed is given up (and counted)
// when this many newer ones are waiting.
const MaxInFlight = 100000

type logMessage struct {
	first     time.Time
	account   string
	header    string // the account from a logged header (the last copy)
	client    string // X-Mailer or User-Agent from a logged header
	origin    string // X-Originating-IP from a logged header
	clientIP  string
	sender    string
	size      int64
	messageID string
	rcpts     []string
	seenRcpt  map[string]bool
}

// LogStats counts what a Postfix log scan found.
type LogStats struct {
	Lines     int // lines read
	Bad       int // Postfix lines that could not be read (bad timestamps)
	Messages  int // records produced
	Unknown   int // messages with recipients but no account (no SASL login, no logged account header)
	Abandoned int // messages given up (never removed, beyond MaxInFlight)
}

// ScanPostfixLog turns a Postfix mail log into replay records, streaming:
// a message is emitted when its queue file is removed (qmgr "removed"),
// or at the end of the log. Its account is the SASL login (smtpd
// sasl_username=) or, for mail a trusted relay submits (Zimbra's webmail),
// the last X-Authenticated-User header the log names: Postfix logs a
// header with header_checks action INFO (`/^X-Authenticated-User:/ INFO`,
// likewise X-Mailer, User-Agent and X-Originating-IP, which give the
// client and the origin). Messages without an account are counted as
// unknown, never guessed. Sender and size come from qmgr, the message-id
// from cleanup, the recipients from the delivery agents' to= lines. Syslog
// timestamps carry no year; year supplies it. A gzip-compressed log is
// read as such.
func ScanPostfixLog(r io.Reader, year int, emit func(Record) error) (LogStats, error) {
	var st LogStats
	br := bufio.NewReaderSize(r, 64<<10)
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return st, fmt.Errorf("reading compressed mail log: %w", err)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 64<<10)
	}
	msgs := map[string]*logMessage{}
	var order []string // queue ids in first-seen order, possibly emitted already
	flush := func(qid string) error {
		lm := msgs[qid]
		if lm == nil {
			return nil
		}
		delete(msgs, qid)
		if len(lm.rcpts) == 0 {
			return nil
		}
		account := lm.account
		if account == "" {
			account = lm.header
		}
		if account == "" {
			st.Unknown++
			return nil
		}
		rec := Record{Time: lm.first, Account: account, Sender: lm.sender, Recipients: lm.rcpts, ClientIP: lm.clientIP, Size: lm.size, Client: lm.client}
		if lm.messageID != "" {
			rec.MessageID = "<" + lm.messageID + ">"
		}
		if lm.origin != "" {
			rec.Headers = map[string]string{"X-Originating-IP": lm.origin}
		}
		st.Messages++
		return emit(rec)
	}
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 64<<10), maxLogLine)
	for sc.Scan() {
		st.Lines++
		m := logLineRe.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		t, err := parseLogTime(m[1], year)
		if err != nil {
			st.Bad++
			continue
		}
		service, qid, text := m[2], m[3], m[4]
		lm := msgs[qid]
		if lm == nil {
			if text == "removed" {
				continue
			}
			lm = &logMessage{first: t, seenRcpt: map[string]bool{}}
			msgs[qid] = lm
			order = append(order, qid)
			if len(msgs) > MaxInFlight {
				// The oldest message still waiting is given up.
				for len(order) > 0 {
					old := order[0]
					order = order[1:]
					if _, ok := msgs[old]; ok {
						st.Abandoned++
						if err := flush(old); err != nil {
							return st, err
						}
						break
					}
				}
			}
			if len(order) > 4*MaxInFlight {
				order = compact(order, msgs)
			}
		}
		if service == "cleanup" && strings.HasPrefix(text, "info: header ") {
			logHeader(lm, strings.TrimPrefix(text, "info: header "))
			continue
		}
		if text == "removed" {
			// qmgr after the last delivery attempt, or postsuper -d.
			if err := flush(qid); err != nil {
				return st, err
			}
			continue
		}
		kv := map[string]string{}
		for _, p := range kvRe.FindAllStringSubmatch(text, -1) {
			if _, dup := kv[p[1]]; !dup {
				kv[p[1]] = strings.Trim(p[2], "<>")
			}
		}
		switch service {
		case "smtpd":
			if v, ok := kv["sasl_username"]; ok {
				lm.account = v
			}
			if c, ok := kv["client"]; ok {
				if i, j := strings.LastIndexByte(c, '['), strings.LastIndexByte(c, ']'); i >= 0 && j > i {
					lm.clientIP = c[i+1 : j]
				}
			}
		case "qmgr":
			if v, ok := kv["from"]; ok {
				lm.sender = v
			}
			if v, ok := kv["size"]; ok {
				lm.size, _ = strconv.ParseInt(v, 10, 64)
			}
		case "cleanup":
			if v, ok := kv["message-id"]; ok {
				lm.messageID = v
			}
		default:
			if v, ok := kv["to"]; ok && v != "" && !lm.seenRcpt[v] && len(lm.rcpts) < 10000 {
				lm.seenRcpt[v] = true
				lm.rcpts = append(lm.rcpts, v)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return st, fmt.Errorf("reading mail log: %w", err)
	}
	for _, qid := range order {
		if err := flush(qid); err != nil {
			return st, err
		}
	}
	return st, nil
}

// logHeader reads a header_checks INFO line's "NAME: VALUE from CLIENT;
// from=<…> …" into lm. The last copy of a header wins: it is the one the
// trusted relay added.
func logHeader(lm *logMessage, s string) {
	name, rest, ok := strings.Cut(s, ": ")
	if !ok {
		return
	}
	value := rest
	if i := strings.LastIndex(rest, " from "); i >= 0 {
		value = rest[:i]
	}
	value = strings.TrimSpace(value)
	switch strings.ToLower(name) {
	case "x-authenticated-user":
		lm.header = value
	case "x-mailer", "user-agent":
		lm.client = value
	case "x-originating-ip":
		lm.origin = value
	}
}

// compact drops the queue ids already emitted from order.
func compact(order []string, msgs map[string]*logMessage) []string {
	out := order[:0]
	for _, q := range order {
		if _, ok := msgs[q]; ok {
			out = append(out, q)
		}
	}
	return out
}

// ParsePostfixLog reads a whole Postfix mail log into records, in time
// order (ScanPostfixLog, collected).
func ParsePostfixLog(r io.Reader, year int) ([]Record, LogStats, error) {
	var out []Record
	st, err := ScanPostfixLog(r, year, func(rec Record) error { out = append(out, rec); return nil })
	if err != nil {
		return nil, st, err
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, st, nil
}

func parseLogTime(s string, year int) (time.Time, error) {
	if len(s) > 4 && s[4] == '-' {
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999-0700", "2006-01-02T15:04:05.999999"} {
			if t, err := time.Parse(layout, s); err == nil {
				return t.UTC(), nil
			}
		}
		return time.Time{}, fmt.Errorf("bad timestamp %q", s)
	}
	t, err := time.Parse("Jan _2 15:04:05 2006", strings.Join(strings.Fields(s), " ")+" "+strconv.Itoa(year))
	if err != nil {
		t, err = time.Parse("Jan 2 15:04:05 2006", strings.Join(strings.Fields(s), " ")+" "+strconv.Itoa(year))
	}
	return t.UTC(), err
}
