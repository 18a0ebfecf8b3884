package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/postfixtest"
)

// relayedMessage builds a message as a Zimbra mailbox server relays it to
// its MTA: the client's header block (from a raw MIME upload, SendMsg
// <m aid=…>), then the headers MailSender.updateHeaders adds with addHeader,
// which ZInternetHeaders places after every existing copy (zm-mailbox
// store/src/java/com/zimbra/cs/mailbox/MailSender.java lines 964–1001 and
// common/src/java/com/zimbra/common/zmime/ZInternetHeaders.java lines
// 189–237, commit 2b7f9787c69ed6b95ce37a415ba27c50f1091c72).
func relayedMessage(subject string, client, relay [][2]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "From: sender@campus.example\nTo: undisclosed-recipients:;\nSubject: %s\nMessage-ID: <%d.%s@campus.example>\nDate: %s\n",
		subject, time.Now().UnixNano(), strings.ReplaceAll(subject, " ", "-"), time.Now().Format(time.RFC1123Z))
	for _, h := range client {
		fmt.Fprintf(&b, "%s: %s\n", h[0], h[1])
	}
	for _, h := range relay {
		fmt.Fprintf(&b, "%s: %s\n", h[0], h[1])
	}
	b.WriteString("\nHello.\n")
	return b.String()
}

func (d *daemon) account(name string) api.AccountDetail {
	d.t.Helper()
	var a api.AccountDetail
	out := d.mustCLI("account", "show", name, "--json")
	if err := json.Unmarshal([]byte(out), &a); err != nil {
		d.t.Fatalf("account show --json: %v\n%s", err, out)
	}
	return a
}

// TestRelayIdentityThroughPostfix: webmail relayed from a trusted mailbox
// server without SASL, through a real Postfix with both the policy service
// (RCPT and END-OF-MESSAGE) and the milter. The account is the relay's
// (last) X-Authenticated-User copy on both paths and in every record:
//   - a forged first copy naming a victim: charged to the relay's account,
//     held with identity-header-forged; the victim is never charged;
//   - an envelope sender that is not the account (a persona, an alias,
//     delegated send-as): both paths charge the header's account once, and
//     the envelope sender nothing;
//   - a forged AJAX X-Mailer before the relay's zclient one does not hide
//     the scripted client from the bulk trap.
func TestRelayIdentityThroughPostfix(t *testing.T) {
	in, d := startPair(t, true, true, postfixtest.Options{}, "")
	relay := func(account, mailer string) [][2]string {
		return [][2]string{{"X-Originating-IP", "[198.51.100.23]"}, {"X-Mailer", mailer}, {"X-Authenticated-User", account}}
	}

	// 1. Forged identity header.
	forged := in.Send(t, postfixtest.SendOptions{From: "mallory@campus.example", To: recipients(3, "dest.example"),
		Data: relayedMessage("forged identity", [][2]string{{"X-Authenticated-User", "victim@campus.example"}}, relay("mallory@campus.example", ajax))})
	if !forged.Accepted {
		t.Fatalf("forged: not accepted: %s", forged.Transcript)
	}
	h := d.waitHold(forged.QueueID)
	if h.Account != "mallory@campus.example" || !slices.Contains(h.Reasons, "identity-header-forged") {
		t.Fatalf("forged: hold %+v, want account mallory with identity-header-forged", h)
	}
	in.WaitHeld(t, 1, 10*time.Second)
	if v := d.account("victim@campus.example"); v.Counters.Messages24h != 0 || v.State != "" && v.State != "normal" {
		t.Fatalf("victim charged or restricted: %+v", v)
	}
	if m := d.account("mallory@campus.example"); m.Counters.Messages24h != 1 || m.Counters.Recipients24h != 3 {
		t.Fatalf("mallory counters %+v, want 1 message, 3 recipients", m.Counters)
	}

	// 2. Envelope sender alice, account bob: both paths agree on bob.
	alias := in.Send(t, postfixtest.SendOptions{From: "alice@campus.example", To: recipients(60, "dest.example"),
		Data: relayedMessage("persona", nil, relay("bob@campus.example", ajax))})
	if !alias.Accepted {
		t.Fatalf("alias: not accepted: %s", alias.Transcript)
	}
	in.Sink.WaitRecipients(t, 60, 20*time.Second)
	if b := d.account("bob@campus.example"); b.Counters.Messages24h != 1 || b.Counters.Recipients24h != 60 {
		t.Fatalf("bob counters %+v, want 1 message, 60 recipients", b.Counters)
	}
	if a := d.account("alice@campus.example"); a.Counters.Messages24h != 0 {
		t.Fatalf("alice (the envelope sender) charged: %+v", a.Counters)
	}

	// 3. A forged AJAX X-Mailer before the relay's zclient one.
	script := in.Send(t, postfixtest.SendOptions{From: "carol@campus.example", To: recipients(60, "dest.example"),
		Data: relayedMessage("hidden script", [][2]string{{"X-Mailer", ajax}}, relay("carol@campus.example", zclient))})
	if !script.Accepted {
		t.Fatalf("script: not accepted: %s", script.Transcript)
	}
	hs := d.waitHold(script.QueueID)
	if hs.ClientFamily != "zimbra-html" || !slices.Contains(hs.Reasons, "bulk-from-scripted-client") || hs.Account != "carol@campus.example" {
		t.Fatalf("script: hold %+v, want zimbra-html bulk-from-scripted-client on carol", hs)
	}
	if !strings.Contains(d.log.String(), "client-header-mismatch") {
		t.Error("the forged X-Mailer copy is not reported as evidence (client-header-mismatch)")
	}
	// Every hold is on record once, with one audit line each.
	audit := d.mustCLI("quarantine", "audit", "--json")
	for _, qid := range []string{forged.QueueID, script.QueueID} {
		if n := strings.Count(audit, "queue_id="+qid+" "); n != 1 {
			t.Errorf("queue id %s has %d hold audit lines, want 1", qid, n)
		}
	}
	// The policy path left this relayed mail to the milter, and said so.
	if !strings.Contains(d.log.String(), "left to the milter") {
		t.Error("the daemon did not log that relayed mail is decided by the milter")
	}
}
