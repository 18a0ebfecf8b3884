package replay

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// A Postfix mail log line: "Mon DD HH:MM:SS host postfix/service[pid]: QID: text"
// (syslog), or with an RFC 3339 timestamp (maillog_file, rsyslog).
var (
	logLineRe  = regexp.MustCompile(`^(\w{3} +\d{1,2} \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT[0-9:.]+(?:Z|[+-]\d\d:?\d\d)?) \S+ postfix(?:/[\w.-]+)*/(\w+)\[\d+\]: ([0-9A-Za-z]{6,32}): (.*)$`)
	kvRe       = regexp.MustCompile(`([\w-]+)=(<[^>]*>|[^,\s]*)`)
	maxLogLine = 64 << 10
)

type logMessage struct {
	first     time.Time
	account   string
	clientIP  string
	sender    string
	nrcpt     int
	size      int64
	messageID string
	rcpts     []string
	seenRcpt  map[string]bool
}

// ParsePostfixLog turns a Postfix mail log into replay records: one per
// message that was submitted with SASL (sasl_username on the smtpd line),
// with the sender and size from qmgr, the message-id from cleanup and the
// recipients from the delivery agents' to= lines. Syslog timestamps carry
// no year; year supplies it. Lines that are not Postfix queue lines are
// skipped; the count of unreadable Postfix lines is returned.
func ParsePostfixLog(r io.Reader, year int) ([]Record, int, error) {
	msgs := map[string]*logMessage{}
	var order []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLogLine)
	bad := 0
	for sc.Scan() {
		m := logLineRe.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		t, err := parseLogTime(m[1], year)
		if err != nil {
			bad++
			continue
		}
		service, qid, text := m[2], m[3], m[4]
		lm := msgs[qid]
		if lm == nil {
			lm = &logMessage{first: t, seenRcpt: map[string]bool{}}
			msgs[qid] = lm
			order = append(order, qid)
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
			if v, ok := kv["nrcpt"]; ok {
				lm.nrcpt, _ = strconv.Atoi(v)
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
		return nil, bad, fmt.Errorf("reading mail log: %w", err)
	}
	var out []Record
	for _, qid := range order {
		lm := msgs[qid]
		if lm.account == "" || len(lm.rcpts) == 0 {
			continue
		}
		rec := Record{Time: lm.first, Account: lm.account, Sender: lm.sender, Recipients: lm.rcpts, ClientIP: lm.clientIP, Size: lm.size}
		if lm.messageID != "" {
			rec.MessageID = "<" + lm.messageID + ">"
		}
		out = append(out, rec)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, bad, nil
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
