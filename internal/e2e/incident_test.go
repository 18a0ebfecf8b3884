package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/postfixtest"
	"github.com/mailbrake/mailbrake/internal/store"
)

// TestBulkHoldIncidentAndMarkSpam: a spam run from the scripted client is
// held, opens an incident and restricts the account at once (the default
// contain-mass-sending playbook); the admin marks the held message as
// spam, which deletes it and confirms the incident: the account is locked
// and its next message is held.
func TestBulkHoldIncidentAndMarkSpam(t *testing.T) {
	in, d := startPair(t, true, false, postfixtest.Options{}, "")
	a := in.Send(t, postfixtest.SendOptions{From: "mallory@campus.example", To: recipients(60, "dest.example"),
		Headers: map[string]string{"X-Mailer": zclient, "Subject": "invoice"}, Body: "Dear customer,\n\n" + invoiceText})
	if !a.Accepted {
		t.Fatalf("not accepted: %s", a.Transcript)
	}
	h := d.waitHold(a.QueueID)
	inc := waitIncident(t, d, "mallory@campus.example", func(in store.Incident) bool {
		s := in.Step("restrict-sending")
		return s != nil && s.Status == store.StepDone
	})
	if inc.State != store.IncidentOpen || inc.Playbook != "contain-mass-sending" || inc.Step("lock-login").Status != store.StepPending {
		t.Fatalf("incident after the hold: %+v", inc)
	}
	if show := d.mustCLI("account", "show", "mallory@campus.example"); !strings.Contains(show, "restricted") ||
		!strings.Contains(show, "Recent verdicts:") || !strings.Contains(show, "hold   60 rcpts  bulk-from-scripted-client") ||
		!strings.Contains(show, "Score 5 in the last 24h, from 1 message: scripted 5.") {
		t.Fatalf("account not restricted, or its verdict or score not shown:\n%s", show)
	}
	out := d.mustCLI("quarantine", "spam", fmt.Sprint(h.ID), "--note", "invoice phish")
	if !strings.Contains(out, "contained") {
		t.Fatalf("quarantine spam: %s", out)
	}
	in.WaitQueue(t, 10*time.Second, func(q []postfixtest.QueueEntry) bool { return inQueue(q, a.QueueID) == "" })
	if got := d.holdByQueueID(a.QueueID); got.State != store.HoldDeleted {
		t.Fatalf("hold after spam: %s", got.State)
	}
	inc = waitIncident(t, d, "mallory@campus.example", func(in store.Incident) bool { return in.State == store.IncidentContained })
	if !strings.Contains(strings.Join(inc.Reasons, ","), "marked-spam") {
		t.Fatalf("incident reasons: %v", inc.Reasons)
	}
	b := in.Send(t, postfixtest.SendOptions{From: "mallory@campus.example", To: []string{"one@dest.example"},
		Headers: map[string]string{"Subject": "hi"}, Body: "hi\n"})
	hb := d.waitHold(b.QueueID)
	if strings.Join(hb.Reasons, ",") != "account-locked" {
		t.Fatalf("next message: %+v", hb)
	}
	// The text marked as spam is held from any account, at once (the
	// installation is still learning, carol has no history).
	c := in.Send(t, postfixtest.SendOptions{From: "carol@campus.example", To: []string{"friend@dest.example"},
		Headers: map[string]string{"Subject": "Re: invoice"}, Body: "Hello Bob,\n\n" + invoiceText})
	hc := d.waitHold(c.QueueID)
	if strings.Join(hc.Reasons, ",") != "marked-spam-text" || hc.Account != "carol@campus.example" || len(hc.Prints) == 0 {
		t.Fatalf("same text from another account: %+v", hc)
	}
	// Another text from carol goes.
	e := in.Send(t, postfixtest.SendOptions{From: "carol@campus.example", To: []string{"friend@dest.example"},
		Headers: map[string]string{"Subject": "lunch"}, Body: "Shall we have lunch on Thursday at the usual place near the library, at noon?\n"})
	in.WaitQueue(t, 10*time.Second, func(q []postfixtest.QueueEntry) bool { return inQueue(q, e.QueueID) == "" })
	if hs := d.holds(); slices.ContainsFunc(hs, func(h store.Hold) bool { return h.QueueID == e.QueueID }) {
		t.Fatalf("an ordinary message of carol's was held")
	}
}

// invoiceText is the body of the spam run marked as spam.
const invoiceText = "your invoice 48213 is overdue. Pay the outstanding amount today through the payment portal to avoid a late fee and the suspension of your service.\n"

func waitIncident(t *testing.T, d *daemon, account string, ok func(store.Incident) bool) store.Incident {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var list []store.Incident
		if err := json.Unmarshal([]byte(d.mustCLI("incident", "list", "--state", "all", "--account", account, "--json")), &list); err != nil {
			t.Fatal(err)
		}
		if len(list) > 0 && ok(list[0]) {
			return list[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("incident of %s not as expected: %+v", account, list)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
