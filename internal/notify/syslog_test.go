package notify

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func syslogNotifier(t *testing.T, network, addr string) *Notifier {
	t.Helper()
	n, _, _, _ := newNotifier(t, Config{Syslog: SyslogConfig{Network: network, Addr: addr, Facility: "local3"}})
	n.hostname, n.pid = "mx1", 812
	return n
}

const wantSyslog = `<156>1 2026-01-02T03:04:05.000000Z mx1 mailbrake 812 playbook-finished [mailbrake@32473 incident="42" account="alice@example.edu" kind="playbook-finished" severity="high" state="contained" reasons="password-leak"] incident 42 on alice@example.edu: playbook-finished, severity high, state contained; reasons: password-leak; steps: lock-login done, end-sessions failed`

func TestSyslogUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	n := syslogNotifier(t, "udp", pc.LocalAddr().String())
	rs := n.Send(context.Background(), testEvent())
	if len(rs) != 1 || !rs[0].Sent || rs[0].Err != nil || rs[0].Recipients[0] != "udp://"+pc.LocalAddr().String() {
		t.Fatalf("results %+v", rs)
	}
	buf := make([]byte, 65536)
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	k, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(buf[:k]); got != wantSyslog {
		t.Errorf("got  %s\nwant %s", got, wantSyslog)
	}
	mustNotContain(t, "syslog line", string(buf[:k]), "212 recipients", "p******1", "Call Alice")
}

func TestSyslogTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		r := bufio.NewReader(c)
		lenField, err := r.ReadString(' ')
		if err != nil {
			got <- err.Error()
			return
		}
		size, _ := strconv.Atoi(strings.TrimSuffix(lenField, " "))
		msg := make([]byte, size)
		if _, err := io.ReadFull(r, msg); err != nil {
			got <- err.Error()
			return
		}
		got <- string(msg)
	}()
	n := syslogNotifier(t, "tcp", l.Addr().String())
	if err := n.Notify(context.Background(), testEvent()); err != nil {
		t.Fatal(err)
	}
	if g := <-got; g != wantSyslog {
		t.Errorf("got  %s\nwant %s", g, wantSyslog)
	}
}

func TestSyslogUnix(t *testing.T) {
	dir, err := os.MkdirTemp("", "notify") // short: sun_path has 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "log")
	pc, err := net.ListenPacket("unixgram", path)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	n := syslogNotifier(t, "unix", path)
	ev := testEvent()
	ev.Kind = KindStepFailed
	ev.Incident.Account = "jürgen@example.edu"
	ev.Incident.Reasons = []string{`odd"reason]`, `back\slash`}
	if err := n.Notify(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65536)
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	k, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	line := string(buf[:k])
	// local3 (19) * 8 + err (3)
	mustContain(t, "syslog line", line, "<155>1 ", ` step-failed [mailbrake@32473 incident="42" account="jürgen@example.edu"`,
		`reasons="odd\"reason\],back\\slash"`, "] \uFEFFincident 42 on jürgen@example.edu: step-failed")
	sd, err := parseSyslog(line)
	if err != nil {
		t.Fatal(err)
	}
	if sd.params["reasons"] != `odd"reason],back\slash` || sd.params["account"] != "jürgen@example.edu" {
		t.Errorf("params %v", sd.params)
	}
}

func TestSyslogBounds(t *testing.T) {
	ev := testEvent()
	ev.Incident.Account = strings.Repeat("ä", 1000)
	for i := range 40 {
		ev.Incident.Reasons = append(ev.Incident.Reasons, fmt.Sprintf("reason-%d-%s", i, strings.Repeat("x", 90)))
	}
	for i := range 60 {
		ev.Incident.Steps = append(ev.Incident.Steps, Step{Name: fmt.Sprintf("step-%d", i), Status: "done"})
	}
	ev.Incident.State = "a\nb\r\nc"
	line := formatSyslog(syslogHeader{facility: 3, time: t0, hostname: "mx1", app: "mailbrake", pid: 1}, bound(ev), maxSyslogUDP)
	if len(line) > maxSyslogUDP {
		t.Errorf("line of %d bytes", len(line))
	}
	if strings.ContainsAny(string(line), "\r\n") {
		t.Errorf("line breaks in %q", line)
	}
	if _, err := parseSyslog(string(line)); err != nil {
		t.Errorf("%v: %s", err, line)
	}
}

// syslogMsg is an RFC 5424 message taken apart by parseSyslog.
type syslogMsg struct {
	pri                                 int
	timestamp, host, app, procID, msgID string
	sdID                                string
	params                              map[string]string
	msg                                 string
}

// parseSyslog parses the subset of RFC 5424 formatSyslog writes: one
// SD-ELEMENT and a MSG.
func parseSyslog(line string) (syslogMsg, error) {
	var m syslogMsg
	if !strings.HasPrefix(line, "<") {
		return m, fmt.Errorf("no PRI")
	}
	end := strings.Index(line, ">1 ")
	if end < 0 {
		return m, fmt.Errorf("no version")
	}
	pri, err := strconv.Atoi(line[1:end])
	if err != nil || pri < 0 || pri > 191 {
		return m, fmt.Errorf("bad PRI %q", line[1:end])
	}
	m.pri = pri
	fields := strings.SplitN(line[end+3:], " ", 6)
	if len(fields) != 6 {
		return m, fmt.Errorf("short header")
	}
	m.timestamp, m.host, m.app, m.procID, m.msgID = fields[0], fields[1], fields[2], fields[3], fields[4]
	if _, err := time.Parse(time.RFC3339Nano, m.timestamp); err != nil {
		return m, err
	}
	for _, f := range []struct {
		v   string
		max int
	}{{m.host, 255}, {m.app, 48}, {m.procID, 128}, {m.msgID, 32}} {
		if !printUSASCII(f.v, f.max) {
			return m, fmt.Errorf("bad header field %q", f.v)
		}
	}
	rest := fields[5]
	if !strings.HasPrefix(rest, "[") {
		return m, fmt.Errorf("no SD")
	}
	rest = rest[1:]
	sp := strings.IndexByte(rest, ' ')
	if sp < 0 {
		return m, fmt.Errorf("no SD-ID")
	}
	m.sdID, rest = rest[:sp], rest[sp:]
	m.params = map[string]string{}
	for strings.HasPrefix(rest, " ") {
		rest = rest[1:]
		eq := strings.Index(rest, `="`)
		if eq < 0 {
			return m, fmt.Errorf("bad SD-PARAM")
		}
		name := rest[:eq]
		rest = rest[eq+2:]
		var v strings.Builder
		for {
			if rest == "" {
				return m, fmt.Errorf("unterminated PARAM-VALUE")
			}
			c := rest[0]
			rest = rest[1:]
			if c == '\\' && rest != "" && strings.ContainsRune(`"\]`, rune(rest[0])) {
				v.WriteByte(rest[0])
				rest = rest[1:]
				continue
			}
			if c == '"' {
				break
			}
			if c == ']' {
				return m, fmt.Errorf("unescaped ] in PARAM-VALUE")
			}
			v.WriteByte(c)
		}
		m.params[name] = v.String()
	}
	if !strings.HasPrefix(rest, "] ") && rest != "]" {
		return m, fmt.Errorf("SD not closed: %q", rest)
	}
	m.msg = strings.TrimPrefix(strings.TrimPrefix(rest, "]"), " ")
	return m, nil
}
