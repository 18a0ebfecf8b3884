package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/postfixtest"
)

// TestReplyToSuspectedPhish: an inbound spam-tagged message, then a user's
// reply to it → the reply is held with reply-to-suspected-phish.
func TestReplyToSuspectedPhish(t *testing.T) {
	// Loopback is not a trusted relay here, so unauthenticated mail from
	// the test client is inbound; the user's reply is a SASL submission.
	in, d := startPair(t, true, false, postfixtest.Options{SASL: true, Users: map[string]string{"victim@campus.example": "pw-for-test"}},
		"identity: {trusted_networks: [192.0.2.0/24]}\n")
	phish := in.Send(t, postfixtest.SendOptions{From: "it-desk@phish.example", To: []string{"victim@campus.example"},
		Headers: map[string]string{
			"Subject":    "[Fraud Alert: Suspected SPAM] Your mailbox is almost full",
			"Message-Id": "<quota-42@phish.example>",
			"From":       "IT Help Desk <it-desk@phish.example>",
			"Reply-To":   "Help Desk <verify@drop.example>",
		}, Body: "Reply with your username and password.\n"})
	if !phish.Accepted {
		t.Fatalf("inbound phish not accepted: %s", phish.Transcript)
	}
	in.Sink.WaitMessages(t, 1, 20*time.Second) // inbound is delivered (tagging is the spam filter's job)

	reply := in.Send(t, postfixtest.SendOptions{From: "victim@campus.example", To: []string{"verify@drop.example"},
		AuthUser: "victim@campus.example", AuthPassword: "pw-for-test",
		Headers: map[string]string{"Subject": "Re: Your mailbox is almost full", "In-Reply-To": "<quota-42@phish.example>",
			"References": "<quota-42@phish.example>", "User-Agent": "Mozilla Thunderbird"},
		Body: "here you are\n"})
	if !reply.Accepted {
		t.Fatalf("reply not accepted: %s", reply.Transcript)
	}
	in.WaitQueue(t, 10*time.Second, func(q []postfixtest.QueueEntry) bool { return inQueue(q, reply.QueueID) == "hold" })
	h := d.waitHold(reply.QueueID)
	if strings.Join(h.Reasons, ",") != "reply-to-suspected-phish" || h.Account != "victim@campus.example" {
		t.Fatalf("hold: %+v", h)
	}
	// A reply to ordinary mail is not held.
	ok := in.Send(t, postfixtest.SendOptions{From: "victim@campus.example", To: []string{"friend@example.org"},
		AuthUser: "victim@campus.example", AuthPassword: "pw-for-test",
		Headers: map[string]string{"Subject": "Re: lunch", "In-Reply-To": "<lunch@example.org>"}, Body: "yes\n"})
	in.Sink.WaitMessages(t, 2, 20*time.Second)
	if inQueue(in.Queue(t), ok.QueueID) == "hold" {
		t.Fatal("an ordinary reply was held")
	}
}
