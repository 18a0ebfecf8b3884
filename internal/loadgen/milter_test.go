package loadgen

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	milter "github.com/d--j/go-milter"
)

// milterLog is what the test milters saw, shared by all their sessions.
type milterLog struct {
	mu       sync.Mutex
	eoms     int
	xMailers map[string]int
	perUser  map[string]int
	problems []string
}

func (l *milterLog) problem(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.problems) < 10 {
		l.problems = append(l.problems, fmt.Sprintf(format, args...))
	}
}

// quarantineMilter holds (quarantines) a message with more than 50
// recipients, the default bulk rule's threshold, and tempfails a user's
// messages past tempfailAfter (0: never). It checks what it is sent
// against what Postfix sends and rejects with 554 what Postfix would not
// send.
type quarantineMilter struct {
	milter.NoOpMilter
	log           *milterLog
	bodyMin       int
	bodyMax       int
	tempfailAfter int

	helo    bool
	user    string
	rcpts   int
	xMailer string
	body    int
	bad     string
}

func (m *quarantineMilter) fail(format string, args ...any) {
	if m.bad == "" {
		m.bad = fmt.Sprintf(format, args...)
		m.log.problem("%s", m.bad)
	}
}

func (m *quarantineMilter) Connect(host, family string, port uint16, addr string, mod milter.Modifier) (*milter.Response, error) {
	if mod.Version() != 6 || family != "tcp4" || port == 0 || !strings.HasPrefix(mod.Get(macroClient), "unknown [") {
		m.fail("connect: version %d family %q port %d _=%q", mod.Version(), family, port, mod.Get(macroClient))
	}
	if mod.Get(milter.MacroMTAVersion) != "Postfix 3.7.11" || mod.Get(milter.MacroDaemonName) == "" || mod.Get(milter.MacroMTAFQDN) == "" {
		m.fail("connect macros v=%q {daemon_name}=%q j=%q", mod.Get(milter.MacroMTAVersion), mod.Get(milter.MacroDaemonName), mod.Get(milter.MacroMTAFQDN))
	}
	return milter.RespContinue, nil
}

func (m *quarantineMilter) Helo(name string, mod milter.Modifier) (*milter.Response, error) {
	m.helo = true
	if mod.Get(milter.MacroTlsVersion) == "" {
		m.fail("helo %q without {tls_version}", name)
	}
	return milter.RespContinue, nil
}

func (m *quarantineMilter) MailFrom(from, esmtp string, mod milter.Modifier) (*milter.Response, error) {
	m.user, m.rcpts, m.xMailer, m.body, m.bad = mod.Get(milter.MacroAuthAuthen), 0, "", 0, ""
	if !m.helo || !userRE.MatchString(m.user) || mod.Get(milter.MacroAuthType) != "PLAIN" || from != m.user || mod.Get(milter.MacroMailAddr) != from {
		m.fail("MAIL %q helo %v {auth_authen}=%q {auth_type}=%q {mail_addr}=%q", from, m.helo, m.user, mod.Get(milter.MacroAuthType), mod.Get(milter.MacroMailAddr))
	}
	if _, ok := mod.GetEx(milter.MacroQueueId); ok {
		m.fail("i at MAIL: Postfix has no queue file yet")
	}
	return milter.RespContinue, nil
}

func (m *quarantineMilter) RcptTo(rcpt, esmtp string, mod milter.Modifier) (*milter.Response, error) {
	m.rcpts++
	if _, ok := mod.GetEx(milter.MacroQueueId); ok != (m.rcpts > 1) {
		m.fail("i defined %v at RCPT #%d", ok, m.rcpts)
	}
	if mod.Get(milter.MacroRcptAddr) != rcpt {
		m.fail("{rcpt_addr}=%q at RCPT %q", mod.Get(milter.MacroRcptAddr), rcpt)
	}
	return milter.RespContinue, nil
}

func (m *quarantineMilter) Header(name, value string, mod milter.Modifier) (*milter.Response, error) {
	if name == "X-Mailer" {
		m.xMailer = value
	}
	if name == "Received" {
		m.fail("Received: passed to the milter; Postfix does not")
	}
	return milter.RespContinue, nil
}

func (m *quarantineMilter) BodyChunk(chunk []byte, mod milter.Modifier) (*milter.Response, error) {
	if strings.Contains(strings.ReplaceAll(string(chunk), "\r\n", ""), "\n") {
		m.fail("body line ending other than CRLF")
	}
	m.body += len(chunk)
	return milter.RespContinue, nil
}

func (m *quarantineMilter) EndOfMessage(mod milter.Modifier) (*milter.Response, error) {
	if _, ok := mod.GetEx(milter.MacroQueueId); !ok {
		m.fail("no i at end-of-message")
	}
	// makeBody may shorten a body by one byte so as not to split a CRLF.
	if m.body < m.bodyMin-1 || m.body > m.bodyMax {
		m.fail("body of %d bytes, want %d..%d", m.body, m.bodyMin, m.bodyMax)
	}
	l := m.log
	l.mu.Lock()
	l.eoms++
	l.xMailers[m.xMailer]++
	l.perUser[m.user]++
	sent := l.perUser[m.user]
	l.mu.Unlock()
	if m.bad != "" {
		return milter.RejectWithCodeAndReason(554, "5.7.0 "+m.bad)
	}
	if m.rcpts > 50 {
		if err := mod.Quarantine("bulk: more than 50 recipients"); err != nil {
			return nil, err
		}
		return milter.RespAccept, nil
	}
	if m.tempfailAfter > 0 && sent > m.tempfailAfter {
		return milter.RejectWithCodeAndReason(451, "4.7.1 rate limit")
	}
	return milter.RespAccept, nil
}

// startMilter serves quarantineMilters on 127.0.0.1:0.
func startMilter(t *testing.T, bodyMin, bodyMax, tempfailAfter int) (string, *milterLog) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := &milterLog{xMailers: map[string]int{}, perUser: map[string]int{}}
	srv := milter.NewServer(
		milter.WithMilter(func() milter.Milter {
			return &quarantineMilter{log: log, bodyMin: bodyMin, bodyMax: bodyMax, tempfailAfter: tempfailAfter}
		}),
		milter.WithAction(milter.OptQuarantine),
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return ln.Addr().String(), log
}

func TestRunMilterOutcomes(t *testing.T) {
	const n = 120
	for _, tc := range []struct {
		name          string
		rcpts         int
		perConn       int
		xMailer       string
		tempfailAfter int
		want          map[string]int64 // nil: check the tempfail mix instead
		wantXMailer   string
	}{
		{"50-rcpts-accepted", 50, 1, "", 0, map[string]int64{"ACCEPT": n}, XMailerThunderbird},
		{"51-rcpts-quarantined", 51, 1, "zclient", 0, map[string]int64{"QUARANTINE": n}, XMailerZclient},
		{"sessions-of-3", 2, 3, "zwc", 0, map[string]int64{"ACCEPT": n}, XMailerZimbraWeb},
		{"literal-x-mailer", 1, 1, "Outlook 16.0", 0, map[string]int64{"ACCEPT": n}, "Outlook 16.0"},
		{"no-x-mailer", 1, 1, "none", 0, map[string]int64{"ACCEPT": n}, ""},
		{"rate-limited", 1, 2, "", 5, nil, XMailerThunderbird},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const bodyMin, bodyMax = 5 << 10, 20 << 10
			addr, log := startMilter(t, bodyMin, bodyMax, tc.tempfailAfter)
			res, err := RunMilter(t.Context(), MilterOptions{
				Addr: addr, Conns: 4, N: n, Duration: time.Minute, Users: 10, Skew: 1.2,
				Rcpts: tc.rcpts, MsgsPerConn: tc.perConn, XMailer: tc.xMailer, Timeout: 10 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			log.mu.Lock()
			problems, eoms, xMailers := slices.Clone(log.problems), log.eoms, log.xMailers
			log.mu.Unlock()
			if len(problems) > 0 {
				t.Fatalf("the milter saw what Postfix would not send:\n%s", strings.Join(problems, "\n"))
			}
			if res.Requests != n || res.ErrorCount() != 0 || res.Stopped != StopCount || res.Kind != KindMilter {
				t.Fatalf("messages %d errors %v stopped %q kind %q", res.Requests, res.Errors, res.Stopped, res.Kind)
			}
			if eoms != n || xMailers[tc.wantXMailer] != n {
				t.Errorf("milter saw %d messages, X-Mailer %v; want %d with %q", eoms, xMailers, n, tc.wantXMailer)
			}
			var sum int64
			for _, v := range res.Outcomes {
				sum += v
			}
			if sum != n {
				t.Errorf("outcomes %v add up to %d, not %d", res.Outcomes, sum, n)
			}
			if tc.want != nil {
				if !maps.Equal(res.Outcomes, tc.want) {
					t.Errorf("outcomes %v, want %v", res.Outcomes, tc.want)
				}
			} else if res.Outcomes["TEMPFAIL(451)@eom"] == 0 || res.Outcomes["ACCEPT"] == 0 || len(res.Outcomes) != 2 {
				t.Errorf("outcomes %v, want ACCEPT and TEMPFAIL(451)@eom", res.Outcomes)
			}
			if res.Modifications != res.Outcomes["QUARANTINE"] {
				t.Errorf("%d modifications for %d quarantined", res.Modifications, res.Outcomes["QUARANTINE"])
			}
			// A session ends after its MsgsPerConn messages or after a
			// message that was not queued.
			notQueued := n - res.Outcomes["ACCEPT"] - res.Outcomes["QUARANTINE"]
			minSessions := (n + int64(tc.perConn) - 1) / int64(tc.perConn)
			if tc.perConn == 1 && res.Connections != n {
				t.Errorf("%d sessions for %d messages, one each", res.Connections, n)
			}
			// Each of the 4 connections may end the run in a session it had not filled.
			if res.Connections < minSessions || res.Connections > minSessions+notQueued+4 {
				t.Errorf("%d sessions for %d messages at %d per session (%d not queued)", res.Connections, n, tc.perConn, notQueued)
			}
			l := res.Latency
			if !(0 < l.Min && l.Min <= l.P50 && l.P50 <= l.P99 && l.P99 <= l.Max) {
				t.Errorf("latencies out of order: %+v", l)
			}
		})
	}
}

func TestRunMilterRefusesRemote(t *testing.T) {
	for _, addr := range []string{"203.0.113.9:10042", "[::ffff:192.0.2.1]:10042", "0.0.0.0:10042"} {
		_, err := RunMilter(t.Context(), MilterOptions{Addr: addr})
		if !errors.Is(err, ErrNotLoopback) {
			t.Errorf("%s: got %v, want ErrNotLoopback", addr, err)
		}
	}
}

func TestEOMOutcome(t *testing.T) {
	quarantine := []milter.ModifyAction{{Type: milter.ActionAddHeader, HeaderName: "X-Spam", HeaderValue: "no"}, {Type: milter.ActionQuarantine, Reason: "bulk"}}
	addHeader := quarantine[:1]
	for _, tc := range []struct {
		mods []milter.ModifyAction
		act  milter.Action
		want string
	}{
		{nil, milter.Action{Type: milter.ActionAccept}, "ACCEPT"},
		{nil, milter.Action{Type: milter.ActionContinue}, "ACCEPT"},
		{addHeader, milter.Action{Type: milter.ActionAccept}, "ACCEPT"},
		{quarantine, milter.Action{Type: milter.ActionAccept}, "QUARANTINE"},
		{quarantine, milter.Action{Type: milter.ActionContinue}, "QUARANTINE"},
		{quarantine, milter.Action{Type: milter.ActionDiscard}, "DISCARD@eom"},
		{quarantine, milter.Action{Type: milter.ActionRejectWithCode, SMTPCode: 451}, "TEMPFAIL(451)@eom"},
		{nil, milter.Action{Type: milter.ActionRejectWithCode, SMTPCode: 550}, "REJECT(550)@eom"},
		{nil, milter.Action{Type: milter.ActionTempFail}, "TEMPFAIL@eom"},
		{nil, milter.Action{Type: milter.ActionReject}, "REJECT@eom"},
	} {
		if got := eomOutcome(tc.mods, &tc.act); got != tc.want {
			t.Errorf("%v with %v: %s, want %s", tc.act, tc.mods, got, tc.want)
		}
	}
}

func TestMakeBody(t *testing.T) {
	bodies := makeBodies(1, 5<<10, 20<<10)
	for i, b := range bodies {
		if len(b) < 5<<10-1 || len(b) > 20<<10 || !strings.HasSuffix(string(b), "\r\n") {
			t.Fatalf("body %d: %d bytes, ends %q", i, len(b), b[max(0, len(b)-4):])
		}
		for _, line := range strings.Split(strings.TrimSuffix(string(b), "\r\n"), "\r\n") {
			if len(line) > 76 || strings.ContainsAny(line, "\r\n") {
				t.Fatalf("body %d: line %q", i, line)
			}
		}
	}
	if b := makeBody(nil, 0); string(b) != "\r\n" {
		t.Errorf("empty body %q", b)
	}
}

// slowMilter answers every event after a pause: each reply comes within
// the timeout, but a whole message takes far longer than the run.
type slowMilter struct {
	milter.NoOpMilter
	pause time.Duration
}

func (m *slowMilter) wait() (*milter.Response, error) {
	time.Sleep(m.pause)
	return milter.RespContinue, nil
}

func (m *slowMilter) Connect(string, string, uint16, string, milter.Modifier) (*milter.Response, error) {
	return m.wait()
}
func (m *slowMilter) Helo(string, milter.Modifier) (*milter.Response, error) { return m.wait() }
func (m *slowMilter) MailFrom(string, string, milter.Modifier) (*milter.Response, error) {
	return m.wait()
}
func (m *slowMilter) RcptTo(string, string, milter.Modifier) (*milter.Response, error) {
	return m.wait()
}
func (m *slowMilter) Header(string, string, milter.Modifier) (*milter.Response, error) {
	return m.wait()
}

// TestRunMilterWatchdog: per-step timeouts alone would let this run go on
// for seconds after its end; the watchdog closes the session at end +
// timeout + 1 s, and the run reports why it stopped.
func TestRunMilterWatchdog(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := milter.NewServer(milter.WithMilter(func() milter.Milter { return &slowMilter{pause: 150 * time.Millisecond} }))
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	res, err := RunMilter(t.Context(), MilterOptions{Addr: ln.Addr().String(), Conns: 1, Duration: 50 * time.Millisecond, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stopped != StopWatchdog || res.Requests != 0 || res.ErrorCount() != 0 {
		t.Fatalf("stopped %q, %d messages, errors %v", res.Stopped, res.Requests, res.Errors)
	}
}
