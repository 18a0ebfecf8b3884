package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/postfixtest"
	"github.com/mailbrake/mailbrake/internal/store"
)

const (
	zclient = "Zimbra 8.8.15_GA_4545 (zclient/8.8.15_GA_4545)"
	ajax    = "Zimbra 8.8.15_GA_3901 (ZimbraWebClient - FF73 (Linux)/8.8.15_GA_3895)"
)

// startPair starts Postfix with mailbrake's milter and/or policy service,
// then mailbrake managing that Postfix's queue.
func startPair(t *testing.T, milter, policy bool, pf postfixtest.Options, extraYAML string) (*postfixtest.Instance, *daemon) {
	t.Helper()
	var mAddr, pAddr string
	if milter {
		mAddr = freeAddr(t)
		pf.MilterAddr = mAddr
		if pf.MilterDefaultAction == "" {
			pf.MilterDefaultAction = "tempfail"
		}
	}
	if policy {
		pAddr = freeAddr(t)
		pf.PolicyAddr = pAddr
	}
	in := postfixtest.Start(t, pf)
	d := startDaemon(t, daemonOptions{Milter: mAddr, Policy: pAddr, PostfixConfigDir: in.ConfigDir, ExtraYAML: extraYAML})
	return in, d
}

// TestMilterHoldReleaseDelete covers scenarios (a)–(e) of the foundation
// issue and the queue following postsuper used directly.
func TestMilterHoldReleaseDelete(t *testing.T) {
	// No sync grace: the test deletes a hold with postsuper -d a moment
	// after it was made (a released one needs no grace).
	mAddr := freeAddr(t)
	in := postfixtest.Start(t, postfixtest.Options{MilterAddr: mAddr, MilterDefaultAction: "tempfail"})
	d := startDaemon(t, daemonOptions{Milter: mAddr, PostfixConfigDir: in.ConfigDir, SyncGrace: "0s"})
	rcpts := recipients(60, "dest.example")

	// (a) 60 recipients from the scripted HTML client: held, nothing delivered.
	a := in.Send(t, postfixtest.SendOptions{From: "alice@campus.example", To: rcpts,
		Headers: map[string]string{"X-Mailer": zclient, "Subject": "scenario a"}, Body: "Dear friend,\nclick here.\n"})
	if !a.Accepted || a.QueueID == "" {
		t.Fatalf("(a) not accepted: %+v\n%s", a.Codes, a.Transcript)
	}
	held := in.WaitHeld(t, 1, 10*time.Second)
	if held[0].QueueID != a.QueueID {
		t.Fatalf("(a) held %s, sent %s", held[0].QueueID, a.QueueID)
	}
	h := d.waitHold(a.QueueID)
	if h.State != store.HoldHeld || strings.Join(h.Reasons, ",") != "bulk-from-scripted-client" ||
		h.RecipientCount != 60 || len(h.Recipients) != 60 || h.ClientFamily != "zimbra-html" || h.Client != zclient ||
		h.Account != "alice@campus.example" || h.Sender != "alice@campus.example" || h.Subject != "scenario a" || h.Path != "milter" {
		t.Fatalf("(a) hold record: %+v", h)
	}
	if h.HeldAt.IsZero() || h.ID == 0 {
		t.Fatalf("(a) hold record lacks id or time: %+v", h)
	}
	full, err := d.cli("quarantine", "show", fmt.Sprint(h.ID), "--json")
	if err != nil || !strings.Contains(full, "click here") || !strings.Contains(full, "X-Mailer: "+zclient) {
		t.Fatalf("(a) show lacks preview or headers: %v\n%s", err, full)
	}

	// (b) the same 60 recipients from the AJAX client: all delivered.
	b := in.Send(t, postfixtest.SendOptions{From: "bob@campus.example", To: rcpts,
		Headers: map[string]string{"X-Mailer": ajax, "Subject": "scenario b"}, Body: "Team lunch on Friday.\n"})
	if !b.Accepted {
		t.Fatalf("(b) not accepted: %s", b.Transcript)
	}
	// (c) 3 recipients from zclient: delivered.
	c := in.Send(t, postfixtest.SendOptions{From: "carol@campus.example", To: recipients(3, "dest.example"),
		Headers: map[string]string{"X-Mailer": zclient, "Subject": "scenario c"}, Body: "Hi.\n"})
	if !c.Accepted {
		t.Fatalf("(c) not accepted: %s", c.Transcript)
	}
	in.Sink.WaitRecipients(t, 63, 20*time.Second)
	if n := countRcpts(bySubject(t, in.Sink, "scenario b")); n != 60 {
		t.Fatalf("(b) delivered to %d recipients, want 60", n)
	}
	if n := countRcpts(bySubject(t, in.Sink, "scenario c")); n != 3 {
		t.Fatalf("(c) delivered to %d recipients, want 3", n)
	}
	if n := len(bySubject(t, in.Sink, "scenario a")); n != 0 {
		t.Fatalf("(a) the held message reached the sink %d times", n)
	}

	// (d) release: delivered exactly once to all 60, never held again.
	out := d.mustCLI("quarantine", "release", fmt.Sprint(h.ID))
	if !strings.Contains(out, "released") {
		t.Fatalf("(d) release output: %q", out)
	}
	in.Sink.WaitRecipients(t, 123, 20*time.Second)
	in.WaitQueueEmpty(t, 20*time.Second)
	if got := bySubject(t, in.Sink, "scenario a"); countRcpts(got) != 60 {
		t.Fatalf("(d) released message delivered to %d recipients (%d transactions), want 60 once", countRcpts(got), len(got))
	}
	if h2 := d.holdByQueueID(a.QueueID); h2.State != store.HoldReleased || !strings.HasPrefix(h2.StateBy, "cli:") {
		t.Fatalf("(d) state after release: %+v", h2)
	}
	if _, err := d.cli("quarantine", "release", fmt.Sprint(h.ID)); err == nil {
		t.Fatal("(d) a second release succeeded")
	}
	// After a further flush nothing more arrives: exactly once.
	in.Flush(t)
	time.Sleep(2 * time.Second)
	if got := bySubject(t, in.Sink, "scenario a"); countRcpts(got) != 60 {
		t.Fatalf("(d) released message delivered %d times over", countRcpts(got))
	}

	// (e) delete: gone from the Postfix queue.
	e := in.Send(t, postfixtest.SendOptions{From: "alice@campus.example", To: rcpts,
		Headers: map[string]string{"X-Mailer": zclient, "Subject": "scenario e"}, Body: "More spam.\n"})
	in.WaitHeld(t, 1, 10*time.Second)
	he := d.waitHold(e.QueueID)
	d.mustCLI("quarantine", "delete", fmt.Sprint(he.ID))
	if q := inQueue(in.Queue(t), e.QueueID); q != "" {
		t.Fatalf("(e) deleted message still in queue %s", q)
	}
	if h := d.holdByQueueID(e.QueueID); h.State != store.HoldDeleted {
		t.Fatalf("(e) state after delete: %s", h.State)
	}

	// The state follows postsuper used directly.
	direct := func(subject string, args ...string) *store.Hold {
		r := in.Send(t, postfixtest.SendOptions{From: "alice@campus.example", To: rcpts,
			Headers: map[string]string{"X-Mailer": zclient, "Subject": subject}, Body: "x\n"})
		in.WaitHeld(t, 1, 10*time.Second)
		h := d.waitHold(r.QueueID)
		cmd := in.Command("postsuper", append(args, r.QueueID)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("postsuper %v: %v %s", args, err, out)
		}
		d.mustCLI("quarantine", "sync")
		return d.holdByQueueID(h.QueueID)
	}
	// A released message stays queued (deferred) until the sync has seen
	// it: delivered at once, it would leave the queue as a deleted one
	// does, and a loaded machine would make the test a race.
	in.PostConf(t, map[string]string{"defer_transports": "smtp"})
	in.Reload(t)
	if h := direct("direct release", "-H"); h.State != store.HoldReleased || h.StateBy != "postfix" {
		t.Fatalf("after postsuper -H: %+v", h)
	}
	in.PostConf(t, map[string]string{"defer_transports": ""})
	in.Reload(t)
	in.FlushUntilEmpty(t, 20*time.Second)
	if h := direct("direct delete", "-d"); h.State != store.HoldDeleted || h.StateBy != "postfix" {
		t.Fatalf("after postsuper -d: %+v", h)
	}

	audit := d.mustCLI("quarantine", "audit", "--json")
	for _, want := range []string{"quarantine-hold", "quarantine-release", "quarantine-delete", "quarantine-sync"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit log lacks %s", want)
		}
	}
	// Message bodies never reach the log.
	if strings.Contains(d.log.String(), "click here") {
		t.Error("message body text appears in the daemon log")
	}
}

// TestPolicyOnlyHoldsAtEndOfMessage is scenario (g): the policy path alone,
// with a SASL-authenticated submission.
func TestPolicyOnlyHoldsAtEndOfMessage(t *testing.T) {
	rules := `
rules:
  - name: bulk-authenticated
    stage: eom
    when:
      - {fact: authenticated, eq: "true"}
      - {fact: recipient_count, gt: 50}
    verdict: hold
`
	in, d := startPair(t, false, true, postfixtest.Options{SASL: true, Users: map[string]string{"dave@campus.example": "s3cret-pw"}}, rules)
	r := in.Send(t, postfixtest.SendOptions{From: "dave@campus.example", To: recipients(60, "dest.example"),
		AuthUser: "dave@campus.example", AuthPassword: "s3cret-pw", Headers: map[string]string{"Subject": "scenario g"}, Body: "bulk\n"})
	if !r.Accepted {
		t.Fatalf("(g) not accepted: %s", r.Transcript)
	}
	held := in.WaitHeld(t, 1, 10*time.Second)
	if held[0].QueueID != r.QueueID {
		t.Fatalf("(g) held %s, sent %s", held[0].QueueID, r.QueueID)
	}
	h := d.waitHold(r.QueueID)
	if h.Path != "policy" || h.Account != "dave@campus.example" || strings.Join(h.Reasons, ",") != "bulk-authenticated" ||
		h.RecipientCount != 60 || len(h.Recipients) != 60 {
		t.Fatalf("(g) hold record: %+v", h)
	}
	if !strings.Contains(in.MailLog(), "hold: END-OF-MESSAGE") {
		t.Errorf("(g) Postfix did not log the HOLD at END-OF-MESSAGE:\n%s", tailLines(in.MailLog(), 20))
	}
	small := in.Send(t, postfixtest.SendOptions{From: "dave@campus.example", To: recipients(3, "dest.example"),
		AuthUser: "dave@campus.example", AuthPassword: "s3cret-pw", Headers: map[string]string{"Subject": "scenario g small"}, Body: "hi\n"})
	if !small.Accepted {
		t.Fatalf("(g) small message not accepted: %s", small.Transcript)
	}
	in.Sink.WaitRecipients(t, 3, 20*time.Second)
	if strings.Contains(d.log.String(), "s3cret-pw") {
		t.Error("the SASL password appears in the daemon log")
	}
}

// TestKillNothingLost is scenario (f): mailbrake is killed with SIGKILL
// while messages flow; with milter_default_action=tempfail every message is
// delivered, held, or refused with a 4xx to the client. After the restart
// every held message has a hold record, also one whose record the killed
// daemon had not yet written.
func TestKillNothingLost(t *testing.T) {
	mAddr := freeAddr(t)
	in := postfixtest.Start(t, postfixtest.Options{MilterAddr: mAddr, MilterDefaultAction: "tempfail"})
	d := startDaemon(t, daemonOptions{Milter: mAddr, PostfixConfigDir: in.ConfigDir, SyncGrace: "0s"})
	const n = 24
	results := make([]postfixtest.SendResult, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	killed := make(chan struct{})
	for i := 0; i < n; i++ {
		if i == n/3 {
			// Kill while the first third is in flight.
			go func() { time.Sleep(300 * time.Millisecond); d.kill(); close(killed) }()
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			xm, count := ajax, 3
			if i%2 == 0 {
				xm, count = zclient, 60
			}
			results[i] = in.Send(t, postfixtest.SendOptions{From: fmt.Sprintf("user%d@campus.example", i), To: recipients(count, "dest.example"),
				Headers: map[string]string{"X-Mailer": xm, "Subject": fmt.Sprintf("kill %d", i)}, Body: "body\n"})
		}(i)
	}
	wg.Wait()
	<-killed
	// Let Postfix finish delivering what it accepted.
	in.WaitQueue(t, 30*time.Second, func(q []postfixtest.QueueEntry) bool {
		for _, e := range q {
			if e.QueueName != "hold" {
				return false
			}
		}
		return true
	})
	q := in.Queue(t)
	var delivered, held, tempfailed int
	for _, o := range outcomes(t, in, q, results, func(i int) string { return fmt.Sprintf("kill %d", i) }) {
		switch o {
		case outDelivered:
			delivered++
		case outHeld:
			held++
		case outTempFailed:
			tempfailed++
		}
	}
	t.Logf("after SIGKILL: %d delivered, %d held, %d temp-failed (of %d)", delivered, held, tempfailed, n)
	if tempfailed == 0 {
		t.Error("no message was temp-failed: the kill did not happen while messages flowed")
	}

	d.start()
	// The queue sync at start runs beside the listeners: wait for it.
	records := map[string]store.Hold{}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		for _, h := range d.holds() {
			records[h.QueueID] = h
		}
		if len(records) >= held || time.Now().After(deadline) {
			break
		}
	}
	for i, r := range results {
		if !r.Accepted || inQueue(q, r.QueueID) != "hold" {
			continue
		}
		h, ok := records[r.QueueID]
		if !ok || h.State != store.HoldHeld || strings.Join(h.Reasons, ",") != "bulk-from-scripted-client" || h.Account != fmt.Sprintf("user%d@campus.example", i) {
			t.Errorf("held message %d (queue id %s) after restart: record %+v (found %v)", i, r.QueueID, h, ok)
		}
	}
}

// TestConfigCheck: an invalid config lists every error and exits 2.
func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	bad := dir + "/bad.yaml"
	if err := writeFile(bad, "policy: {listen: nowhere}\nmilter: {on_error: explode}\nrules:\n  - {name: x, verdict: hold, when: [{fact: nope, gt: 1}]}\n"); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "config", "check", bad)
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 2 {
		t.Fatalf("config check of a bad file: %v\n%s", err, out)
	}
	for _, want := range []string{"policy.listen", "milter.on_error", "rules[0].when[0]: unknown fact \"nope\""} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if out, err := exec.Command(binary, "config", "check").CombinedOutput(); err != nil {
		t.Fatalf("the defaults do not check: %v %s", err, out)
	}
	ex, err := exec.Command(binary, "config", "example").Output()
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFile(dir+"/ex.yaml", string(ex)); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(binary, "config", "check", dir+"/ex.yaml").CombinedOutput(); err != nil {
		t.Fatalf("the example does not check: %v %s", err, out)
	}
}
