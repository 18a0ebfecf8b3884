package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/mailbrake/mailbrake/internal/postfixtest"
	"github.com/mailbrake/mailbrake/internal/store"
)

// dialogs answers the page's JavaScript dialogs (window.confirm) as
// accept says at the time, and keeps their messages.
type dialogs struct {
	accept atomic.Bool
	mu     sync.Mutex
	seen   []string
}

func answerDialogs(t *testing.T, ctx context.Context) *dialogs {
	d := &dialogs{}
	evs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range evs {
			if err != nil {
				return
			}
			d.mu.Lock()
			d.seen = append(d.seen, ev.Message)
			d.mu.Unlock()
			if _, err := chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: d.accept.Load()}); err != nil && ctx.Err() == nil {
				t.Errorf("answering a dialog: %v", err)
			}
		}
	}()
	return d
}

// take returns the dialog messages seen since the last call.
func (d *dialogs) take() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.seen
	d.seen = nil
	return s
}

// TestBrowserGuards (issue 14) drives the review UI's guards in a real
// headless Chromium against mail the real Postfix held:
//   - Enter in an incident's note field submits nothing (the compromise is
//     not confirmed), and Confirm asks first, naming the account; refused,
//     nothing runs.
//   - The account page's "Delete all N" asks first with the count; refused,
//     Postfix still holds every message; accepted, exactly that account's
//     held messages leave the queue, audited once with the count.
//   - The quarantine list, one message a page, releases all N matching the
//     filter across pages, and every one is delivered.
func TestBrowserGuards(t *testing.T) {
	in, d := startPair(t, true, false, postfixtest.Options{}, "")
	const adminPW = "Admin-Guards-Pass-4"
	addUser(t, d, "root-admin", "admin", adminPW)
	send := func(from, subject string) postfixtest.SendResult {
		t.Helper()
		r := in.Send(t, postfixtest.SendOptions{From: from, To: recipients(60, "dest.example"),
			Headers: map[string]string{"X-Mailer": zclient, "Subject": subject}, Body: "Dear customer, please pay the attached invoice.\n"})
		d.waitHold(r.QueueID)
		return r
	}
	var mallory, bob []string
	for i := range 3 {
		mallory = append(mallory, send("mallory@campus.example", fmt.Sprintf("invoice %d", i)).QueueID)
	}
	for i := range 2 {
		bob = append(bob, send("bob@campus.example", fmt.Sprintf("class announcement %d", i)).QueueID)
	}
	inc := waitIncident(t, d, "mallory@campus.example", func(in store.Incident) bool {
		s := in.Step("restrict-sending")
		return s != nil && s.Status == store.StepDone
	})
	base := "http://" + d.httpAddr()
	ctx := browser(t)
	dlg := answerDialogs(t, ctx)
	loginAs(t, ctx, base, "root-admin", adminPW)

	// Enter in the note field: no submission at all.
	if err := chromedp.Do(ctx, chromedp.Navigate(fmt.Sprintf("%s/incidents/%d", base, inc.ID)), chromedp.WaitVisible(chromedp.CSS(`input[name=note]`))); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.mbSubmits = []; window.mbSamePage = true;
		document.addEventListener("submit", e => window.mbSubmits.push(e.submitter ? e.submitter.textContent : "(none)"), true); true`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(`input[name=note]`), "false alarm, the user sent it"+kb.Enter)); err != nil {
		t.Fatal(err)
	}
	// Key events are handled before SendKeys returns: a submission would
	// have been recorded, and would have left this document.
	if got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.mbSamePage === true ? JSON.stringify(window.mbSubmits) : "navigated"`)); err != nil || got != "[]" {
		t.Fatalf("Enter in the note field: %q %v, want no submission", got, err)
	}
	if got := waitIncident(t, d, "mallory@campus.example", func(store.Incident) bool { return true }); got.State != store.IncidentOpen || got.Step("lock-login").Status != store.StepPending {
		t.Fatalf("after Enter in the note: %s, lock-login %s", got.State, got.Step("lock-login").Status)
	}
	if seen := dlg.take(); len(seen) != 0 {
		t.Fatalf("Enter opened dialogs: %q", seen)
	}

	// Confirm asks first; refused, nothing runs.
	dlg.accept.Store(false)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`form[action="/incidents/%d/confirm"] button.danger`, inc.ID)))); err != nil {
		t.Fatal(err)
	}
	if seen := dlg.take(); len(seen) != 1 || !strings.HasPrefix(seen[0], "Confirm the compromise of mallory@campus.example?") {
		t.Fatalf("Confirm's dialog: %q", seen)
	}
	if got := waitIncident(t, d, "mallory@campus.example", func(store.Incident) bool { return true }); got.State != store.IncidentOpen || got.Step("lock-login").Status != store.StepPending {
		t.Fatalf("after refusing Confirm: %s, lock-login %s", got.State, got.Step("lock-login").Status)
	}

	// The account page: delete everything mallory has held.
	deleteAll := `form[action="/quarantine/all"] button[value=delete]`
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/accounts/mallory@campus.example"), chromedp.WaitVisible(chromedp.CSS(deleteAll))); err != nil {
		t.Fatal(err)
	}
	if label, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(deleteAll))); label != "Delete all 3" {
		t.Fatalf("the account page offers %q", label)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(deleteAll))); err != nil {
		t.Fatal(err)
	}
	if seen := dlg.take(); len(seen) != 1 || !strings.HasPrefix(seen[0], "Delete all 3 held messages of mallory@campus.example from the Postfix queue?") {
		t.Fatalf("Delete all's dialog: %q", seen)
	}
	heldOf := func(qids []string) int {
		n := 0
		for _, e := range in.Held(t) {
			for _, q := range qids {
				if e.QueueID == q {
					n++
				}
			}
		}
		return n
	}
	if n := heldOf(mallory); n != 3 {
		t.Fatalf("refused, yet Postfix holds %d of mallory's 3 messages", n)
	}
	dlg.accept.Store(true)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(deleteAll)), chromedp.WaitVisible(chromedp.CSS(`p.flash`))); err != nil {
		t.Fatal(err)
	}
	if seen := dlg.take(); len(seen) != 1 {
		t.Fatalf("Delete all asked %d times", len(seen))
	}
	if flash, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`p.flash`))); !strings.Contains(flash, "Deleted 3 of 3 held messages.") {
		t.Fatalf("after delete all: %q", flash)
	}
	in.WaitQueue(t, 10*time.Second, func(q []postfixtest.QueueEntry) bool {
		for _, qid := range mallory {
			if inQueue(q, qid) != "" {
				return false
			}
		}
		return true
	})
	for _, qid := range mallory {
		if st := d.holdByQueueID(qid).State; st != store.HoldDeleted {
			t.Errorf("mallory's %s is %s", qid, st)
		}
	}
	if n := heldOf(bob); n != 2 {
		t.Fatalf("deleting mallory's mail left %d of bob's 2 held", n)
	}
	audit := d.mustCLI("quarantine", "audit", "--target", "account:mallory@campus.example")
	if !strings.Contains(audit, "quarantine-bulk") || !strings.Contains(audit, `delete 3 of 3 held messages matching account="mallory@campus.example"`) || !strings.Contains(audit, "web:root-admin") {
		t.Fatalf("the bulk delete is not audited with its count:\n%s", audit)
	}

	// The quarantine, one message a page: release all that match.
	releaseAll := `form[action="/quarantine/all"] button[value=release]`
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/quarantine?state=held&limit=1"), chromedp.WaitVisible(chromedp.CSS(releaseAll))); err != nil {
		t.Fatal(err)
	}
	if rows, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("tbody tr[id^=hold-]").length`)); rows != 1 {
		t.Fatalf("%d rows on a page of one", rows)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(releaseAll)), chromedp.WaitVisible(chromedp.CSS(`p.flash`))); err != nil {
		t.Fatal(err)
	}
	if seen := dlg.take(); len(seen) != 1 || !strings.HasPrefix(seen[0], "Release all 2 held messages") {
		t.Fatalf("Release all's dialog: %q", seen)
	}
	if flash, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`p.flash`))); !strings.Contains(flash, "Released 2 of 2 held messages.") {
		t.Fatalf("after release all: %q", flash)
	}
	in.Sink.WaitRecipients(t, 120, 30*time.Second)
	for _, qid := range bob {
		if st := d.holdByQueueID(qid).State; st != store.HoldReleased {
			t.Errorf("bob's %s is %s", qid, st)
		}
	}
}

// TestQuarantineDeleteAllCLI: `quarantine delete-all --account` only counts
// without --yes, then deletes exactly that account's held messages from
// the real Postfix queue.
func TestQuarantineDeleteAllCLI(t *testing.T) {
	in, d := startPair(t, true, false, postfixtest.Options{}, "")
	var eve []string
	for i := range 2 {
		r := in.Send(t, postfixtest.SendOptions{From: "eve@campus.example", To: recipients(60, "dest.example"),
			Headers: map[string]string{"X-Mailer": zclient, "Subject": fmt.Sprintf("run %d", i)}, Body: "buy now\n"})
		d.waitHold(r.QueueID)
		eve = append(eve, r.QueueID)
	}
	other := in.Send(t, postfixtest.SendOptions{From: "dan@campus.example", To: recipients(60, "dest.example"),
		Headers: map[string]string{"X-Mailer": zclient, "Subject": "class list"}, Body: "see you\n"})
	d.waitHold(other.QueueID)
	if out := d.mustCLI("quarantine", "delete-all", "--account", "eve@campus.example"); !strings.Contains(out, "2 held messages match") {
		t.Fatalf("without --yes: %s", out)
	}
	if n := len(in.Held(t)); n != 3 {
		t.Fatalf("counting deleted something: %d held", n)
	}
	if out := d.mustCLI("quarantine", "delete-all", "--account", "eve@campus.example", "--yes"); !strings.Contains(out, "delete 2 of 2 held messages") {
		t.Fatalf("with --yes: %s", out)
	}
	in.WaitQueue(t, 10*time.Second, func(q []postfixtest.QueueEntry) bool { return inQueue(q, eve[0]) == "" && inQueue(q, eve[1]) == "" })
	if q := in.Held(t); len(q) != 1 || q[0].QueueID != other.QueueID {
		t.Fatalf("held after delete-all: %+v", q)
	}
	if out := d.mustCLI("quarantine", "delete-all", "--account", "eve@campus.example"); !strings.Contains(out, "no held message matches") {
		t.Fatalf("afterwards: %s", out)
	}
}
