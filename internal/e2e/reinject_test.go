package e2e

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/postfixtest"
	"github.com/mailbrake/mailbrake/internal/store"
)

// spamFilter is the test's content filter: like amavis with SpamAssassin,
// it adds X-Spam-Flag: YES and a subject tag to phish ("mailbox is full")
// after mailbrake's milter saw the message on its first smtpd pass.
func spamFilter(_ string, _ []string, data []byte) []byte {
	if !bytes.Contains(data, []byte("mailbox is full")) {
		return data
	}
	data = bytes.Replace(data, []byte("\r\nSubject: "), []byte("\r\nSubject: [SPAM] "), 1)
	return append([]byte("X-Spam-Flag: YES\r\n"), data...)
}

// TestContentFilterLoop: with an after-queue content filter (Postfix
// FILTER_README; Zimbra's amavis), every message passes smtpd twice with
// two queue IDs. mailbrake counts, holds and audits each message once, a
// released message is delivered once and not held again, and the spam tag
// the filter adds after the first pass is learned (a reply to the phish is
// held) while a tag the sender wrote is not (a reply to the poisoner goes
// out). Both with the master.cf lines postfix-config prints for the
// re-injection service (it gets mailbrake's milter and is listed in
// postfix.reinjection_listeners) and without them (the re-injection
// service inherits main.cf's milter and policy service; mailbrake knows
// the message by the first pass's Received header).
func TestContentFilterLoop(t *testing.T) {
	t.Run("overrides applied", func(t *testing.T) { contentFilterLoop(t, true) })
	t.Run("overrides not applied", func(t *testing.T) { contentFilterLoop(t, false) })
}

func contentFilterLoop(t *testing.T, applied bool) {
	mAddr, pAddr := freeAddr(t), freeAddr(t)
	pf := postfixtest.Options{MilterAddr: mAddr, MilterDefaultAction: "tempfail", PolicyAddr: pAddr, ContentFilter: true, Filter: spamFilter}
	if applied {
		// The re-injection service as Zimbra's master.cf has it
		// (zm-postfix conf/postfix/master.cf.in lines 123–151, commit
		// 06c5ad4606769e6a283f8652404a5216162a9caf: content_filter,
		// restrictions and end-of-data cleared, mynetworks only), with
		// mailbrake's milter instead of none.
		pf.ReinjectOptions = []string{"-o content_filter=", "-o smtpd_milters=inet:" + mAddr,
			"-o smtpd_recipient_restrictions=permit_mynetworks,reject", "-o smtpd_end_of_data_restrictions=",
			"-o mynetworks=127.0.0.0/8"}
	}
	in := postfixtest.Start(t, pf)
	listeners := []string{}
	if applied {
		listeners = []string{in.ReinjectAddr}
	}
	// 127.0.0.1 is the mailbox servers and the filter; 127.0.0.5 is the
	// Internet (Postfix relays for all of 127/8, mailbrake trusts .1).
	d := startDaemon(t, daemonOptions{Milter: mAddr, Policy: pAddr, PostfixConfigDir: in.ConfigDir, ReinjectionListeners: listeners,
		ExtraYAML: "identity: {trusted_networks: [127.0.0.1/32]}\n"})
	relay := func(account, mailer string) [][2]string {
		return [][2]string{{"X-Originating-IP", "[198.51.100.23]"}, {"X-Mailer", mailer}, {"X-Authenticated-User", account}}
	}
	send := func(o postfixtest.SendOptions) postfixtest.SendResult {
		t.Helper()
		r := in.Send(t, o)
		if !r.Accepted {
			t.Fatalf("not accepted: %s", r.Transcript)
		}
		return r
	}
	delivered := func(subject string) []postfixtest.Delivered {
		var out []postfixtest.Delivered
		for _, m := range in.Sink.Messages() {
			if h, err := m.Header(); err == nil && strings.HasSuffix(h.Get("Subject"), subject) {
				out = append(out, m)
			}
		}
		return out
	}

	// 1. A scripted bulk run: held on its first pass, then released by
	// the admin; it goes through the filter and is delivered once.
	bulk := send(postfixtest.SendOptions{From: "alice@campus.example", To: recipients(60, "dest.example"),
		Data: relayedMessage("bulk run", nil, relay("alice@campus.example", zclient))})
	h := d.waitHold(bulk.QueueID)
	in.WaitHeld(t, 1, 10*time.Second)
	d.mustCLI("quarantine", "release", fmt.Sprint(h.ID))
	in.Sink.WaitRecipients(t, 60, 30*time.Second)

	// 2. An ordinary message: counted once.
	send(postfixtest.SendOptions{From: "bob@campus.example", To: recipients(3, "dest.example"),
		Data: relayedMessage("team lunch", nil, relay("bob@campus.example", ajax))})
	// 3. Phish from outside; the filter tags it after mailbrake's first look.
	phishID := fmt.Sprintf("<phish-%d@phish.example>", time.Now().UnixNano())
	send(postfixtest.SendOptions{LocalAddr: "127.0.0.5", From: "it@phish.example", To: []string{"alice@campus.example"},
		Data: "From: IT Desk <it@phish.example>\nTo: alice@campus.example\nSubject: Your mailbox is full\nMessage-ID: " + phishID + "\n\nYour mailbox is full. Log in here.\n"})
	// 4. A poisoner writes the tag into their own message.
	poisonID := fmt.Sprintf("<poison-%d@outside.example>", time.Now().UnixNano())
	send(postfixtest.SendOptions{LocalAddr: "127.0.0.5", From: "friend@outside.example", To: []string{"alice@campus.example"},
		Data: "From: friend@outside.example\nTo: alice@campus.example\nSubject: hello\nX-Spam-Flag: YES\nMessage-ID: " + poisonID + "\n\nLunch?\n"})
	in.Sink.WaitMessages(t, 4, 30*time.Second)
	if got := delivered("Your mailbox is full"); len(got) != 1 {
		t.Fatalf("phish delivered %d times", len(got))
	} else if hdr, _ := got[0].Header(); hdr.Get("X-Spam-Flag") != "YES" {
		t.Fatalf("the filter did not tag the phish: %q", got[0].Data)
	}

	// 5. Carol answers the phish (from her Junk folder): held. (Alice's
	// held run put her account under the contain-mass-sending playbook.)
	reply := send(postfixtest.SendOptions{From: "carol@campus.example", To: []string{"it@phish.example"},
		Data: relayedMessage("Re: Your mailbox is full", [][2]string{{"In-Reply-To", phishID}}, relay("carol@campus.example", ajax))})
	rh := d.waitHold(reply.QueueID)
	if !slices.Contains(rh.Reasons, "reply-to-suspected-phish") {
		t.Fatalf("reply to the filter-tagged phish: hold reasons %v", rh.Reasons)
	}
	// 6. And the poisoner: delivered.
	send(postfixtest.SendOptions{From: "dave@campus.example", To: []string{"friend@outside.example"},
		Data: relayedMessage("Re: hello", [][2]string{{"In-Reply-To", poisonID}}, relay("dave@campus.example", ajax))})
	in.Sink.WaitMessages(t, 5, 30*time.Second)
	if got := delivered("Re: hello"); len(got) != 1 {
		t.Fatalf("the reply to the self-tagged message was not delivered once: %d", len(got))
	}

	// Every message once: one delivery each, one hold record and one
	// audit line for each held message, counters of one pass.
	if got := delivered("bulk run"); len(got) != 1 || len(got[0].Recipients) != 60 {
		t.Fatalf("the released run was delivered %d times", len(got))
	}
	if got := delivered("team lunch"); len(got) != 1 {
		t.Fatalf("team lunch delivered %d times", len(got))
	}
	var held []store.Hold
	for _, x := range d.holds() {
		if x.Account == "alice@campus.example" {
			held = append(held, x)
		}
	}
	if len(held) != 1 {
		t.Fatalf("alice has %d hold records, want 1: %+v", len(held), held)
	}
	audit := d.mustCLI("quarantine", "audit", "--json")
	if n := strings.Count(audit, "queue_id="+bulk.QueueID+" account="); n != 1 {
		t.Errorf("the run has %d hold audit lines, want 1", n)
	}
	if a := d.account("alice@campus.example"); a.Counters.Messages24h != 1 || a.Counters.Recipients24h != 60 {
		t.Errorf("alice counters %+v, want 1 message, 60 recipients", a.Counters)
	}
	if b := d.account("bob@campus.example"); b.Counters.Messages24h != 1 || b.Counters.Recipients24h != 3 {
		t.Errorf("bob counters %+v, want 1 message, 3 recipients", b.Counters)
	}
	for _, sender := range []string{"it@phish.example", "friend@outside.example"} {
		if c := d.account(sender); c.Counters.Messages24h != 0 {
			t.Errorf("inbound sender %s charged on the re-injection pass: %+v", sender, c.Counters)
		}
	}
	if p := in.Filter.Passed(); p != 5 {
		t.Errorf("the filter passed %d messages, want 5 (all but the held reply)", p)
	}
	if body := d.httpGet("/metrics"); !strings.Contains(body, `mailbrake_reinjected_total{path="milter"} 5`) {
		t.Errorf("metrics do not count 5 re-injected messages on the milter path:\n%s", grep(body, "reinjected"))
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
