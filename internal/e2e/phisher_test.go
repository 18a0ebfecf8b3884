package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/postfixtest"
	"github.com/mailbrake/mailbrake/internal/store"
)

// TestReplyToListedPhisher: with an APRL list configured, a user's mail to
// a listed address is held with reply-to-phisher (milter and policy path
// both on: the message is decided on both and learned once), and inbound
// mail whose Reply-To is listed is delivered with the X-Mailbrake-Reasons
// tag.
func TestReplyToListedPhisher(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "phishing_reply_addresses")
	if err := os.WriteFile(list, []byte("# ADDRESS,TYPE,DATE\nverify.desk@drop.example,A,20260101\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in, d := startPair(t, true, true, postfixtest.Options{SASL: true, Users: map[string]string{"victim@campus.example": "pw-for-test"}},
		"identity: {trusted_networks: [192.0.2.0/24]}\nphishers: {lists: ["+list+"]}\n")

	// Inbound: Reply-To is a listed phisher → delivered, tagged.
	phish := in.Send(t, postfixtest.SendOptions{From: "it-desk@uni.example", To: []string{"victim@campus.example"},
		Headers: map[string]string{"Subject": "Verify your account", "Reply-To": "Help Desk <Verify.Desk@drop.example>"},
		Body:    "Reply with your password.\n"})
	if !phish.Accepted {
		t.Fatalf("inbound not accepted: %s", phish.Transcript)
	}
	got := in.Sink.WaitMessages(t, 1, 20*time.Second)
	h, err := got[0].Header()
	if err != nil {
		t.Fatal(err)
	}
	if tag := h.Get("X-Mailbrake-Reasons"); tag != "from-listed-phisher" {
		t.Fatalf("inbound tag = %q, want from-listed-phisher", tag)
	}

	// Outbound to the listed address → held.
	reply := in.Send(t, postfixtest.SendOptions{From: "victim@campus.example", To: []string{"verify.desk@drop.example"},
		AuthUser: "victim@campus.example", AuthPassword: "pw-for-test",
		Headers: map[string]string{"Subject": "Re: Verify your account", "User-Agent": "Mozilla Thunderbird"}, Body: "here you are\n"})
	if !reply.Accepted {
		t.Fatalf("reply not accepted: %s", reply.Transcript)
	}
	in.WaitQueue(t, 10*time.Second, func(q []postfixtest.QueueEntry) bool { return inQueue(q, reply.QueueID) == "hold" })
	hold := d.waitHold(reply.QueueID)
	if !strings.Contains(strings.Join(hold.Reasons, ","), "reply-to-phisher") || hold.Account != "victim@campus.example" {
		t.Fatalf("hold: %+v", hold)
	}
	// The account goes on watch (score 5), off the request path.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out := d.mustCLI("account", "show", "victim@campus.example")
		if strings.Contains(out, "watch") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("account not on watch after a reply to a phisher:\n%s", out)
		}
	}
	// And an incident with the phish-reply playbook waits for an admin.
	inc := waitIncident(t, d, "victim@campus.example", func(in store.Incident) bool { return in.Step("notify") != nil })
	if inc.Playbook != "phish-reply" || inc.State != store.IncidentOpen || inc.Step("lock-login").Status != store.StepPending {
		t.Fatalf("incident: %+v", inc)
	}
	// Mail to anyone else is delivered.
	ok := in.Send(t, postfixtest.SendOptions{From: "victim@campus.example", To: []string{"friend@example.org"},
		AuthUser: "victim@campus.example", AuthPassword: "pw-for-test", Headers: map[string]string{"Subject": "lunch"}, Body: "yes\n"})
	in.Sink.WaitMessages(t, 2, 20*time.Second)
	if inQueue(in.Queue(t), ok.QueueID) == "hold" {
		t.Fatal("mail to an unlisted address was held")
	}
}
