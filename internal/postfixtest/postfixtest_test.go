package postfixtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// wait is generous: these tests run beside others on a 2-core CI machine.
const wait = 20 * time.Second

func recipients(n int) []string {
	rcpts := make([]string, n)
	for i := range rcpts {
		rcpts[i] = fmt.Sprintf("rcpt%02d@example.net", i+1)
	}
	return rcpts
}

// closedAddr returns a 127.0.0.1 address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func mustAccept(t *testing.T, r SendResult) {
	t.Helper()
	if !r.Accepted || r.QueueID == "" {
		t.Fatalf("message not accepted (codes %v, exit %d):\n%s", r.Codes, r.ExitCode, r.Transcript)
	}
}

func TestRelayToSink(t *testing.T) {
	t.Parallel()
	in := Start(t, Options{})
	rcpts := recipients(3)
	r := in.Send(t, SendOptions{
		From:    "alice@example.com",
		To:      rcpts,
		Headers: map[string]string{"X-Mailer": "PHPMailer 6.0", "Subject": "three"},
		Body:    "hello\n.leading dot\n",
	})
	mustAccept(t, r)
	if got := r.RcptCodes; len(got) != 3 || got[0] != 250 || got[2] != 250 {
		t.Errorf("RcptCodes = %v, want three 250s", got)
	}

	msgs := in.Sink.WaitRecipients(t, 3, wait)
	if len(msgs) != 1 {
		t.Fatalf("sink got %d transactions, want 1: %v", len(msgs), msgs)
	}
	m := msgs[0]
	if m.From != "alice@example.com" || strings.Join(m.Recipients, ",") != strings.Join(rcpts, ",") {
		t.Errorf("envelope = %v, want from alice@example.com to %v", m, rcpts)
	}
	h, err := m.Header()
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Get("X-Mailer"); got != "PHPMailer 6.0" {
		t.Errorf("X-Mailer = %q", got)
	}
	if got := h.Get("Subject"); got != "three" {
		t.Errorf("Subject = %q", got)
	}
	if !strings.Contains(h.Get("Received"), "id "+r.QueueID) {
		t.Errorf("Received %q does not name queue id %s", h.Get("Received"), r.QueueID)
	}
	if !strings.HasSuffix(string(m.Data), "\r\n\r\nhello\r\n.leading dot\r\n") {
		t.Errorf("body not delivered intact: %q", m.Data)
	}
	in.WaitQueueEmpty(t, wait)
}

func TestSixtyRecipientsOneTransaction(t *testing.T) {
	t.Parallel()
	in := Start(t, Options{})
	r := in.Send(t, SendOptions{To: recipients(60)})
	mustAccept(t, r)
	msgs := in.Sink.WaitRecipients(t, 60, wait)
	if len(msgs) != 1 || len(msgs[0].Recipients) != 60 {
		for _, m := range msgs {
			t.Log(m)
		}
		t.Fatalf("sink got %d transactions, want one with 60 recipients", len(msgs))
	}
}

// TestHoldAndRelease holds a queued message with postsuper -h and releases
// it the way mailbrake does: postsuper -H, then postqueue -f.
func TestHoldAndRelease(t *testing.T) {
	t.Parallel()
	// defer_transports keeps the message queued (deferred) until released.
	in := Start(t, Options{ExtraMainCF: map[string]string{"defer_transports": "smtp"}})
	r := in.Send(t, SendOptions{From: "bob@example.com", To: recipients(2)})
	mustAccept(t, r)
	in.WaitQueue(t, wait, func(q []QueueEntry) bool {
		return len(q) == 1 && q[0].QueueName == "deferred"
	})

	in.Run(t, "postsuper", "-h", r.QueueID)
	held := in.Held(t)
	if len(held) != 1 {
		t.Fatalf("held = %v, want one message", held)
	}
	e := held[0]
	if e.QueueID != r.QueueID || e.Sender != "bob@example.com" || len(e.Recipients) != 2 ||
		e.Recipients[0].Address != "rcpt01@example.net" {
		t.Errorf("held entry = %+v, want %s from bob@example.com to 2 recipients", e, r.QueueID)
	}
	if since := time.Since(e.ArrivalTime); since < 0 || since > time.Minute {
		t.Errorf("arrival time %v is not recent", e.ArrivalTime)
	}
	if got := in.WaitHeld(t, 1, wait); len(got) != 1 {
		t.Errorf("WaitHeld = %v", got)
	}
	// What mailbrake may do instead of -c: MAIL_CONFIG in the environment.
	cmd := exec.Command("/usr/sbin/postqueue", "-j")
	cmd.Env = in.PostfixCommandEnv()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("postqueue -j with PostfixCommandEnv: %v", err)
	}
	if q, err := ParseQueue(out); err != nil || len(q) != 1 || q[0].QueueName != "hold" {
		t.Errorf("postqueue -j with PostfixCommandEnv = %v, %v; want the held message", q, err)
	}

	in.PostConf(t, map[string]string{"defer_transports": ""})
	in.Reload(t)
	in.Run(t, "postsuper", "-H", r.QueueID)
	in.Flush(t)
	msgs := in.Sink.WaitMessages(t, 1, wait)
	if msgs[0].From != "bob@example.com" || len(msgs[0].Recipients) != 2 {
		t.Errorf("released delivery = %v", msgs[0])
	}
	in.WaitQueueEmpty(t, wait)
}

func TestSASLSubmission(t *testing.T) {
	t.Parallel()
	in := Start(t, Options{SASL: true, Users: map[string]string{
		"alice":           "alice-secret",
		"bob@example.com": "bob-secret",
	}})
	if in.SubmissionAddr == "" || in.SubmissionAddr == in.SMTPAddr {
		t.Fatalf("SubmissionAddr = %q", in.SubmissionAddr)
	}

	ok := in.Send(t, SendOptions{From: "alice@example.com", To: recipients(1), AuthUser: "alice", AuthPassword: "alice-secret"})
	mustAccept(t, ok)
	if ok.Code(StageAuth) != 235 {
		t.Errorf("AUTH code = %d, want 235", ok.Code(StageAuth))
	}
	login := in.Send(t, SendOptions{To: recipients(1), AuthUser: "bob@example.com", AuthPassword: "bob-secret", AuthMechanism: "LOGIN"})
	mustAccept(t, login)

	bad := in.Send(t, SendOptions{To: recipients(1), AuthUser: "alice", AuthPassword: "wrong"})
	if bad.Accepted || bad.Code(StageAuth) != 535 || bad.Code(StageMail) != 0 {
		t.Errorf("wrong password: codes %v, accepted %v; want 535 at AUTH and no MAIL:\n%s", bad.Codes, bad.Accepted, bad.Transcript)
	}
	// Submission relays for authenticated clients only, loopback or not.
	anon := in.Send(t, SendOptions{Server: in.SubmissionAddr, To: recipients(1)})
	if anon.Accepted || anon.Code(StageRcpt) != 554 {
		t.Errorf("no AUTH on submission: codes %v; want 554 at RCPT", anon.Codes)
	}

	msgs := in.Sink.WaitMessages(t, 2, wait)
	for _, m := range msgs {
		if h, _ := m.Header(); !strings.Contains(h.Get("Received"), "with ESMTPA") {
			t.Errorf("Received %q: not an authenticated submission", h.Get("Received"))
		}
	}
	log := in.MailLog()
	for _, want := range []string{"sasl_method=PLAIN, sasl_username=alice\n", "sasl_method=LOGIN, sasl_username=bob@example.com\n"} {
		if !strings.Contains(log, want) {
			t.Errorf("maillog lacks %q", want)
		}
	}
}

func TestMilterDownTempfail(t *testing.T) {
	t.Parallel()
	in := Start(t, Options{MilterAddr: closedAddr(t)})
	r := in.Send(t, SendOptions{To: recipients(1)})
	if r.Accepted || r.Code(StageMail) != 451 || r.Code(StageRcpt) != 0 {
		t.Fatalf("codes %v; want 451 at MAIL FROM:\n%s", r.Codes, r.Transcript)
	}
	if q := in.Queue(t); len(q) != 0 {
		t.Errorf("queue = %v, want empty", q)
	}
	if !strings.Contains(in.MailLog(), "connect to Milter service inet:") {
		t.Errorf("maillog does not mention the milter connect failure")
	}
	if n := len(in.Sink.Messages()); n != 0 {
		t.Errorf("sink got %d messages", n)
	}
}

// TestPolicyDown checks that the generated check_policy_service syntax is
// accepted and that, with try_limit=1 and default_action=DUNNO, mail flows
// when the policy service is not listening.
func TestPolicyDown(t *testing.T) {
	t.Parallel()
	in := Start(t, Options{PolicyAddr: closedAddr(t)})
	r := in.Send(t, SendOptions{To: recipients(5)})
	mustAccept(t, r)
	in.Sink.WaitRecipients(t, 5, wait)
	if !strings.Contains(in.MailLog(), "connect to 127.0.0.1:") {
		t.Errorf("maillog does not show the policy service being tried")
	}
}

// TestStopLeavesNothing checks that cleanup stops master and all its
// processes and removes the directory.
func TestStopLeavesNothing(t *testing.T) {
	t.Parallel()
	var pgid int
	var dir string
	t.Run("instance", func(t *testing.T) {
		in := Start(t, Options{})
		pgid, dir = in.masterPID, in.Dir
		// master may fork its first daemons after `postfix start` returns.
		if !slices.Contains(groupMembers(pgid), pgid) {
			t.Errorf("master %d is not in its own live process group %v", pgid, groupMembers(pgid))
		}
	})
	if pgid == 0 {
		t.Skip("no instance started")
	}
	if live := groupMembers(pgid); len(live) != 0 {
		t.Errorf("processes %v of master %d still alive after cleanup", live, pgid)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists: %v", dir, err)
	}
}

// BenchmarkStart measures starting and stopping an instance (the sink is
// shared).
func BenchmarkStart(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	sink := StartSink(b)
	for b.Loop() {
		in, err := launch(Options{}, sink, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := in.stop(); err != nil {
			b.Fatal(err)
		}
		os.RemoveAll(in.Dir)
	}
}
