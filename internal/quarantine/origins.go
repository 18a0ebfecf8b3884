package quarantine

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"strings"
)

// Origin is who a queued message came from, as its queue file says:
// the SASL login Postfix recorded (named attribute sasl_username), the
// envelope sender, and the copies of one header field (the account
// header a trusted relay such as Zimbra adds), in order.
type Origin struct {
	QueueID      string
	SASLUsername string
	Sender       string
	Header       []string
}

// originBatch is how many queue IDs one postcat reads.
const originBatch = 200

// Origins reads the origin of each queued message of ids with
// `postcat -e -h -q ID…`, up to originBatch a run. header is the header
// field to return the copies of ("": none, and no header is read). A
// message that left the queue meanwhile (postcat stops at it: "open
// queue file …: No such file or directory") is skipped and the rest are
// read on.
func (p *Postfix) Origins(ctx context.Context, ids []string, header string) ([]Origin, error) {
	name := p.Postcat
	if name == "" {
		name = Beside(p.Postsuper, "postcat")
	}
	var out []Origin
	var errs []error
	for len(ids) > 0 && ctx.Err() == nil {
		n := min(len(ids), originBatch)
		batch := ids[:n]
		for _, id := range batch {
			if !ValidQueueID(id) {
				return out, errors.New("invalid queue id " + id)
			}
		}
		args := []string{"-e"}
		if header != "" {
			args = append(args, "-h")
		}
		stdout, stderr, err := p.run(ctx, name, append(append(args, "-q"), batch...)...)
		got := ParsePostcat(stdout, header)
		out = append(out, got...)
		if err == nil {
			ids = ids[n:]
			continue
		}
		// postcat stops at a message it cannot open: one that left the
		// queue meanwhile is skipped and the rest read on. Any other
		// failure (a wrong config directory, a timeout) ends the reading
		// with its error: what was not read is not taken as not there.
		done := map[string]bool{}
		for _, o := range got {
			done[o.QueueID] = true
		}
		next := -1
		for i, id := range batch {
			if !done[id] {
				if strings.Contains(string(stderr), "open queue file "+id+": No such file or directory") {
					next = i + 1
				}
				break
			}
		}
		if next < 0 {
			errs = append(errs, err)
			break
		}
		ids = ids[next:]
	}
	if ctx.Err() != nil {
		errs = append(errs, ctx.Err())
	}
	return out, errors.Join(errs...)
}

// ParsePostcat reads `postcat -e [-h]` output of one or more queue files:
// for each file that ends ("*** MESSAGE FILE END"), its queue ID (the
// last element of the file's path), sasl_username, sender and the copies
// of header (case-insensitive, folded lines joined). A file cut short is
// left out.
func ParsePostcat(out []byte, header string) []Origin {
	var res []Origin
	var cur *Origin
	section := ""
	field := -1 // the header copy being read, for its continuation lines
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "*** "); ok && strings.HasSuffix(rest, " ***") {
			rest = strings.TrimSuffix(rest, " ***")
			kind, path, ok := cutLast(rest, " ")
			if !ok {
				continue
			}
			id := path[strings.LastIndexByte(path, '/')+1:]
			field = -1
			switch kind {
			case "ENVELOPE RECORDS":
				if !ValidQueueID(id) {
					cur = nil
					continue
				}
				cur = &Origin{QueueID: id}
				section = "envelope"
			case "MESSAGE CONTENTS":
				section = "header"
			case "HEADER EXTRACTED":
				section = "extracted"
			case "MESSAGE FILE END":
				if cur != nil && cur.QueueID == id {
					res = append(res, *cur)
				}
				cur, section = nil, ""
			}
			continue
		}
		if cur == nil {
			continue
		}
		switch section {
		case "envelope":
			k, v, ok := strings.Cut(line, ": ")
			if !ok {
				continue
			}
			switch k {
			case "sender":
				cur.Sender = strings.TrimSpace(v)
			case "named_attribute":
				if u, ok := strings.CutPrefix(v, "sasl_username="); ok {
					cur.SASLUsername = strings.TrimSpace(u)
				}
			}
		case "header":
			if header == "" {
				continue
			}
			if line != "" && (line[0] == ' ' || line[0] == '\t') {
				if field >= 0 {
					cur.Header[field] = strings.TrimSpace(cur.Header[field] + " " + strings.TrimSpace(line))
				}
				continue
			}
			field = -1
			k, v, ok := strings.Cut(line, ":")
			if ok && strings.EqualFold(strings.TrimSpace(k), header) {
				cur.Header = append(cur.Header, strings.TrimSpace(v))
				field = len(cur.Header) - 1
			}
		}
	}
	return res
}

func cutLast(s, sep string) (before, after string, ok bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}
