package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// postfixPolicyRequests parses testdata/postfix-3.7.11-policy.txt: each
// request as its attribute names in order and its attributes.
func postfixPolicyRequests(t *testing.T) (names [][]string, attrs []map[string]string) {
	t.Helper()
	b, err := os.ReadFile("testdata/postfix-3.7.11-policy.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range strings.Split(strings.TrimSpace(string(b)), "\n----") {
		var n []string
		a := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(req), "\n") {
			k, v, _ := strings.Cut(line, "=")
			n = append(n, k)
			a[k] = v
		}
		names = append(names, n)
		attrs = append(attrs, a)
	}
	return names, attrs
}

// policyServer is a tiny policy server for the tests. It checks every
// request against what Postfix 3.7.11 sends and answers with decide's
// action, or "REJECT <what is wrong>".
type policyServer struct {
	addr   string
	order  []string // attribute names, in Postfix's order
	rcpts  int      // recipients per message the run uses
	decide func(attrs map[string]string) string
	// stall, if set, is closed when the server has read a request; the
	// server then never answers.
	stall     chan struct{}
	stallOnce sync.Once

	mu        sync.Mutex
	requests  int
	instances map[string]*policyMsg
	problems  []string
}

// policyMsg is what the server saw of one message (one instance).
type policyMsg struct {
	sender, user, client, qid string
	rcptSeen                  int
	eom                       bool
}

var userRE = regexp.MustCompile(`^user\d{5}@example\.com$`)

func startPolicyServer(t *testing.T, rcpts int, decide func(map[string]string) string) *policyServer {
	return startPolicyServerStall(t, rcpts, decide, nil)
}

func startPolicyServerStall(t *testing.T, rcpts int, decide func(map[string]string) string, stall chan struct{}) *policyServer {
	t.Helper()
	names, _ := postfixPolicyRequests(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &policyServer{addr: ln.Addr().String(), order: names[0], rcpts: rcpts, decide: decide, stall: stall, instances: map[string]*policyMsg{}}
	var wg sync.WaitGroup
	var connsMu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			connsMu.Lock()
			conns = append(conns, c)
			connsMu.Unlock()
			wg.Go(func() { s.serve(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		connsMu.Lock()
		for _, c := range conns {
			c.Close()
		}
		connsMu.Unlock()
		wg.Wait()
	})
	return s
}

func (s *policyServer) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	var names []string
	attrs := map[string]string{}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSuffix(line, "\n")
		if line != "" {
			k, v, _ := strings.Cut(line, "=")
			names = append(names, k)
			attrs[k] = v
			continue
		}
		if s.stall != nil {
			s.stallOnce.Do(func() { close(s.stall) })
			_, _ = io.Copy(io.Discard, c) // never answer
			return
		}
		action := s.check(names, attrs)
		if action == "" {
			action = s.decide(attrs)
		}
		if _, err := fmt.Fprintf(c, "action=%s\n\n", action); err != nil {
			return
		}
		names, attrs = nil, map[string]string{}
	}
}

// check returns "REJECT …" if the request is not what Postfix would send.
func (s *policyServer) check(names []string, a map[string]string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	bad := func(format string, args ...any) string {
		p := fmt.Sprintf(format, args...)
		if len(s.problems) < 10 {
			s.problems = append(s.problems, p)
		}
		return "REJECT " + p
	}
	if !slices.Equal(names, s.order) {
		return bad("attributes %v, Postfix sends %v", names, s.order)
	}
	if a["request"] != "smtpd_access_policy" || !userRE.MatchString(a["sasl_username"]) || a["sender"] != a["sasl_username"] {
		return bad("request %q sasl_username %q sender %q", a["request"], a["sasl_username"], a["sender"])
	}
	m := s.instances[a["instance"]]
	if m == nil {
		m = &policyMsg{sender: a["sender"], user: a["sasl_username"], client: a["client_address"]}
		s.instances[a["instance"]] = m
	}
	if m.sender != a["sender"] || m.user != a["sasl_username"] || m.client != a["client_address"] || m.eom {
		return bad("instance %s shared by two messages", a["instance"])
	}
	if m.qid != "" && a["queue_id"] != "" && m.qid != a["queue_id"] {
		return bad("instance %s with two queue IDs", a["instance"])
	}
	if a["queue_id"] != "" {
		m.qid = a["queue_id"]
	}
	n, err := strconv.Atoi(a["recipient_count"])
	if err != nil {
		return bad("recipient_count %q", a["recipient_count"])
	}
	switch a["protocol_state"] {
	case "RCPT":
		m.rcptSeen++
		if n != 0 {
			return bad("recipient_count %d at RCPT", n)
		}
		if (m.rcptSeen == 1) != (a["queue_id"] == "") {
			return bad("queue_id %q at RCPT #%d", a["queue_id"], m.rcptSeen)
		}
		if m.rcptSeen > s.rcpts || a["recipient"] == "" {
			return bad("RCPT #%d recipient %q", m.rcptSeen, a["recipient"])
		}
	case "END-OF-MESSAGE":
		m.eom = true
		if n != s.rcpts || a["queue_id"] == "" {
			return bad("recipient_count %d queue_id %q at END-OF-MESSAGE", n, a["queue_id"])
		}
		if (n == 1) != (a["recipient"] != "") {
			return bad("recipient %q with %d recipients at END-OF-MESSAGE", a["recipient"], n)
		}
	default:
		return bad("protocol_state %q", a["protocol_state"])
	}
	return ""
}

func (s *policyServer) stats() (requests int, problems []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests, slices.Clone(s.problems)
}

func dunno(map[string]string) string { return "DUNNO" }

func TestRunPolicyCounts(t *testing.T) {
	for _, tc := range []struct {
		state string
		rcpts int
	}{
		{"RCPT", 1},
		{"RCPT", 3},
		{"END-OF-MESSAGE", 1},
		{"eom", 4},
		{"both", 1},
		{"both", 3},
	} {
		t.Run(fmt.Sprintf("%s-%d", tc.state, tc.rcpts), func(t *testing.T) {
			srv := startPolicyServer(t, tc.rcpts, dunno)
			const n = 700
			res, err := RunPolicy(t.Context(), PolicyOptions{
				Addr: srv.addr, Conns: 4, N: n, Duration: time.Minute,
				Users: 50, Skew: 1.2, State: tc.state, Rcpts: tc.rcpts, Seed: 3,
			})
			if err != nil {
				t.Fatal(err)
			}
			got, problems := srv.stats()
			if len(problems) > 0 {
				t.Fatalf("the server saw requests Postfix would not send:\n%s", strings.Join(problems, "\n"))
			}
			if res.Requests != n || res.ErrorCount() != 0 || res.Outcomes["DUNNO"] != n || len(res.Outcomes) != 1 {
				t.Fatalf("requests %d errors %v outcomes %v, want %d DUNNO", res.Requests, res.Errors, res.Outcomes, n)
			}
			if got != n {
				t.Errorf("server answered %d requests, want %d", got, n)
			}
			if res.Stopped != StopCount || res.Kind != KindPolicy || res.Connections != 4 {
				t.Errorf("stopped %q kind %q connections %d", res.Stopped, res.Kind, res.Connections)
			}
			l := res.Latency
			if !(0 < l.Min && l.Min <= l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
				t.Errorf("latencies out of order: %+v", l)
			}
			if res.Elapsed <= 0 || res.PerSecond <= 0 {
				t.Errorf("elapsed %v, %v/s", res.Elapsed, res.PerSecond)
			}
		})
	}
}

// TestRunPolicyUsers checks the user distribution through the server's
// eyes: with Zipf s = 1.1 over 1000 users the first user sends about a
// fifth of the mail (1/H(1000, 1.1)); uniformly, a thousandth.
func TestRunPolicyUsers(t *testing.T) {
	heavy := func(a map[string]string) string {
		if a["sasl_username"] == "user00000@example.com" {
			return "DEFER_IF_PERMIT 4.7.1 rate limit"
		}
		return "DUNNO"
	}
	for _, tc := range []struct {
		skew     float64
		min, max float64
	}{
		{1.1, 0.10, 0.35},
		{0, 0, 0.01},
	} {
		t.Run(fmt.Sprint(tc.skew), func(t *testing.T) {
			srv := startPolicyServer(t, 1, heavy)
			res, err := RunPolicy(t.Context(), PolicyOptions{Addr: srv.addr, Conns: 2, N: 4000, Duration: time.Minute, Users: 1000, Skew: tc.skew})
			if err != nil {
				t.Fatal(err)
			}
			share := float64(res.Outcomes["DEFER_IF_PERMIT"]) / float64(res.Requests)
			if res.Requests != 4000 || share < tc.min || share > tc.max {
				t.Fatalf("%d requests, user00000's share %.3f, want %.2f..%.2f (outcomes %v)", res.Requests, share, tc.min, tc.max, res.Outcomes)
			}
		})
	}
}

func TestRunPolicyDuration(t *testing.T) {
	srv := startPolicyServer(t, 1, dunno)
	res, err := RunPolicy(t.Context(), PolicyOptions{Addr: srv.addr, Conns: 2, Duration: 200 * time.Millisecond, Warmup: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := srv.stats()
	if res.Stopped != StopDuration || res.Requests == 0 || int64(got) < res.Requests || res.Elapsed > 200*time.Millisecond {
		t.Fatalf("stopped %q, %d measured of %d answered, elapsed %v", res.Stopped, res.Requests, got, res.Elapsed)
	}
}

// TestRunPolicyRate checks pacing from above only: two connections at
// 100/s in total send one request every 20 ms each, so 300 ms hold at
// most 16 + 15 sends however fast the machine is.
func TestRunPolicyRate(t *testing.T) {
	srv := startPolicyServer(t, 1, dunno)
	res, err := RunPolicy(t.Context(), PolicyOptions{Addr: srv.addr, Conns: 2, Rate: 100, Duration: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.Requests > 31 {
		t.Fatalf("%d requests in 300 ms at 100/s", res.Requests)
	}
}

func TestRunPolicyCancel(t *testing.T) {
	srv := startPolicyServerStall(t, 1, dunno, make(chan struct{}))
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-srv.stall
		cancel()
	}()
	res, err := RunPolicy(ctx, PolicyOptions{Addr: srv.addr, Conns: 1, Duration: time.Minute, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stopped != StopCancelled || res.ErrorCount() != 0 || res.Requests != 0 {
		t.Fatalf("stopped %q, errors %v, %d requests", res.Stopped, res.Errors, res.Requests)
	}
}

// TestRunPolicyTimeout: a server that never answers costs one timeout per
// connection, and the run still ends by itself.
func TestRunPolicyTimeout(t *testing.T) {
	srv := startPolicyServerStall(t, 1, dunno, make(chan struct{}))
	res, err := RunPolicy(t.Context(), PolicyOptions{Addr: srv.addr, Conns: 1, Duration: 100 * time.Millisecond, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors["timeout"] != 1 || res.Requests != 0 {
		t.Fatalf("errors %v, %d requests", res.Errors, res.Requests)
	}
}

func TestRunPolicyRefusesRemote(t *testing.T) {
	for _, addr := range []string{"192.0.2.1:10041", "[2001:db8::1]:10041", "inet:198.51.100.7:10041"} {
		_, err := RunPolicy(t.Context(), PolicyOptions{Addr: addr})
		if !errors.Is(err, ErrNotLoopback) {
			t.Errorf("%s: got %v, want ErrNotLoopback", addr, err)
		}
	}
}

func TestRunPolicyNoServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if _, err := RunPolicy(t.Context(), PolicyOptions{Addr: addr, Conns: 1, Duration: time.Second}); err == nil {
		t.Fatal("a run against a closed port started")
	}
}

// TestPolicyRenderMatchesPostfix compares a generated message's requests
// with the capture attribute by attribute: the same names in the same
// order, and the same values where they do not depend on the message.
func TestPolicyRenderMatchesPostfix(t *testing.T) {
	names, captured := postfixPolicyRequests(t)
	c := common{users: 10, rcpts: 3, seed: 1}
	g := newPolicyGen(&c, "BOTH", 0)
	g.nextMessage()
	if len(g.steps) != 4 {
		t.Fatalf("%d requests for 3 recipients in state both", len(g.steps))
	}
	same := []string{"request", "protocol_state", "protocol_name", "recipient_count", "etrn_domain", "stress", "sasl_sender", "ccert_subject", "policy_context"}
	instance := ""
	for i, st := range g.steps {
		var gotNames []string
		got := map[string]string{}
		for _, line := range strings.Split(strings.TrimSuffix(string(g.render(&st)), "\n\n"), "\n") {
			k, v, _ := strings.Cut(line, "=")
			gotNames = append(gotNames, k)
			got[k] = v
		}
		if !slices.Equal(gotNames, names[i]) {
			t.Fatalf("request %d: attributes\n%v\nPostfix 3.7.11 sends\n%v", i, gotNames, names[i])
		}
		for _, k := range same {
			if got[k] != captured[i][k] {
				t.Errorf("request %d: %s=%q, Postfix sent %q", i, k, got[k], captured[i][k])
			}
		}
		if (got["queue_id"] == "") != (captured[i]["queue_id"] == "") {
			t.Errorf("request %d: queue_id %q, Postfix sent %q", i, got["queue_id"], captured[i]["queue_id"])
		}
		if i == 0 {
			instance = got["instance"]
		} else if got["instance"] != instance {
			t.Errorf("request %d: instance %q, the message's is %q", i, got["instance"], instance)
		}
	}
	g.nextMessage()
	if g.render(&g.steps[0]); strings.Contains(string(g.buf), "instance="+instance+"\n") {
		t.Errorf("two messages share instance %s", instance)
	}
}
