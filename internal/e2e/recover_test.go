package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/mailbrake/mailbrake/internal/postfixtest"
	"github.com/mailbrake/mailbrake/internal/store"
)

// TestHoldRecoveredFromQueue: the hold queue, not mailbrake's store, is
// where a held message lives. A hold whose record could not be written
// (the store locked by another process, the hold spool unwritable, then
// mailbrake killed) and a hold made by the admin's own header_checks are
// both recorded by the queue sync at the next start: the first with the
// account and reasons of the mark the milter put on it, the second as held
// outside mailbrake. Either can then be released as usual.
func TestHoldRecoveredFromQueue(t *testing.T) {
	mAddr := freeAddr(t)
	in := postfixtest.Start(t, postfixtest.Options{MilterAddr: mAddr, MilterDefaultAction: "tempfail"})
	checks := filepath.Join(in.ConfigDir, "header_checks")
	if err := os.WriteFile(checks, []byte("/^Subject: outside hold/ HOLD held by the admin's own rule\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in.PostConf(t, map[string]string{"header_checks": "regexp:" + checks})
	in.Reload(t)
	d := startDaemon(t, daemonOptions{Milter: mAddr, PostfixConfigDir: in.ConfigDir, SyncGrace: "0s"})

	// A message mailbrake passes, held by Postfix's header_checks.
	outside := in.Send(t, postfixtest.SendOptions{From: "bob@campus.example", To: recipients(3, "dest.example"),
		Headers: map[string]string{"X-Mailer": ajax, "Subject": "outside hold"}, Body: "Minutes attached.\n"})
	if !outside.Accepted {
		t.Fatalf("outside-hold message not accepted: %s", outside.Transcript)
	}
	in.WaitHeld(t, 1, 10*time.Second)

	// The hold spool cannot be written (a file where its directory
	// would be), so a record the store does not take is kept in memory
	// only (the spool's own test is the cluster's scenario (d)).
	spoolDir := filepath.Join(d.dataDir, "spool", "holds")
	if err := os.RemoveAll(spoolDir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(spoolDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// Another process holds the store's write lock: the milter still
	// answers (the record is written off the request path) and Postfix
	// holds the message, but its record cannot be written.
	db, err := sql.Open("sqlite", filepath.Join(d.dataDir, "mailbrake.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	lock, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	spam := in.Send(t, postfixtest.SendOptions{From: "alice@campus.example", To: recipients(60, "dest.example"),
		Headers: map[string]string{"X-Mailer": zclient, "Subject": "locked store"}, Body: "Dear friend,\nclick here.\n"})
	if !spam.Accepted {
		t.Fatalf("message not accepted while the store was locked: %s", spam.Transcript)
	}
	in.WaitHeld(t, 2, 10*time.Second)
	// The store has one writer, and each write waits busy_timeout (5 s)
	// before it fails: the account's escalation, the incident reporter's
	// findings, then the hold writer's write and its probe, one after the
	// other — 20 s when they queue in that order, so 20 s was too short.
	deadline := time.Now().Add(40 * time.Second)
	// The writer keeps the record it cannot write (it would write it
	// when the store answers again) and says so; not spooled, killed
	// now, it loses it.
	for !strings.Contains(d.log.String(), "holds kept in memory: the store does not answer") ||
		!strings.Contains(d.log.String(), "holds not spooled, kept in memory only") ||
		!strings.Contains(d.httpGet("/metrics"), "mailbrake_holds_unwritten 1") {
		if time.Now().After(deadline) {
			t.Fatalf("the hold writer did not report the locked store:\n%s", tailLines(d.log.String(), 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
	d.kill()
	if _, err := lock.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	lock.Close()

	// The next start records both from the hold queue.
	d.start()
	var hs []store.Hold
	deadline = time.Now().Add(20 * time.Second)
	for {
		hs = d.holds()
		if len(hs) == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	byQID := map[string]store.Hold{}
	for _, h := range hs {
		byQID[h.QueueID] = h
	}
	s, ok := byQID[spam.QueueID]
	if !ok || s.State != store.HoldHeld || s.Account != "alice@campus.example" || strings.Join(s.Reasons, ",") != "bulk-from-scripted-client" ||
		s.RecipientCount != 60 || s.Subject != "locked store" || s.Path != "milter" {
		t.Fatalf("the milter's hold was not recovered with its mark: %+v (all: %+v)", s, hs)
	}
	o, ok := byQID[outside.QueueID]
	if !ok || o.State != store.HoldHeld || strings.Join(o.Reasons, ",") != "held-outside-mailbrake" ||
		o.Account != "bob@campus.example" || o.RecipientCount != 3 || o.Subject != "outside hold" {
		t.Fatalf("the header_checks hold was not recorded as held outside mailbrake: %+v (all: %+v)", o, hs)
	}
	audit := d.mustCLI("quarantine", "audit", "--json")
	if n := strings.Count(audit, "recovered from the hold queue"); n != 2 {
		t.Errorf("audit names %d recovered holds, want 2:\n%s", n, audit)
	}
	// Counted as the live holds were (the restarted process's metrics),
	// as each is audited.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		m := d.httpGet("/metrics")
		if strings.Contains(m, `mailbrake_holds_total{path="milter"} 1`) && strings.Contains(m, `mailbrake_holds_total{path="queue"} 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("recovered holds not counted:\n%s", grep(m, "mailbrake_holds_total"))
		}
	}

	// A recovered hold is released like any other.
	d.mustCLI("quarantine", "release", fmt.Sprint(s.ID))
	in.Sink.WaitRecipients(t, 60, 20*time.Second)
	if got := bySubject(t, in.Sink, "locked store"); countRcpts(got) != 60 {
		t.Fatalf("released message delivered to %d recipients, want 60", countRcpts(got))
	}
	if h := d.holdByQueueID(outside.QueueID); h.State != store.HoldHeld {
		t.Fatalf("the outside hold changed: %+v", h)
	}
}

// TestOwnHeadersRemoved: the fields only mailbrake writes — the hold
// mark the queue sync reads after a kill, the reasons of a tagged
// message — are removed from what a client sends, through a real
// Postfix: a forged mark naming another account never reaches the hold
// queue beside mailbrake's own, and a forged reasons field is not
// delivered.
func TestOwnHeadersRemoved(t *testing.T) {
	mAddr := freeAddr(t)
	in := postfixtest.Start(t, postfixtest.Options{MilterAddr: mAddr, MilterDefaultAction: "tempfail"})
	startDaemon(t, daemonOptions{Milter: mAddr, PostfixConfigDir: in.ConfigDir})
	forged := map[string]string{"X-Mailer": ajax, "Subject": "forged marks",
		"X-Mailbrake-Hold": "4FORGED account=victim@campus.example reasons=bulk-from-scripted-client", "X-Mailbrake-Reasons": "trusted-sender"}
	r := in.Send(t, postfixtest.SendOptions{From: "bob@campus.example", To: recipients(2, "dest.example"), Headers: forged, Body: "Minutes attached.\n"})
	if !r.Accepted {
		t.Fatalf("not accepted: %s", r.Transcript)
	}
	in.Sink.WaitRecipients(t, 2, 20*time.Second)
	got := bySubject(t, in.Sink, "forged marks")
	if len(got) == 0 {
		t.Fatal("not delivered")
	}
	if data := string(got[0].Data); strings.Contains(data, "X-Mailbrake-Hold") || strings.Contains(data, "trusted-sender") {
		t.Fatalf("a forged mailbrake field was delivered:\n%s", data)
	}

	// Held (a scripted client to 60): the queue file has mailbrake's mark
	// alone, naming the message's own queue ID and the sender.
	forged["X-Mailer"], forged["Subject"] = zclient, "forged marks held"
	h := in.Send(t, postfixtest.SendOptions{From: "bob@campus.example", To: recipients(60, "dest.example"), Headers: forged, Body: "spam\n"})
	in.WaitHeld(t, 1, 10*time.Second)
	headers := in.Run(t, "postcat", "-h", "-q", h.QueueID)
	marks := regexp.MustCompile(`(?mi)^X-Mailbrake-Hold: (.*)$`).FindAllStringSubmatch(headers, -1)
	if len(marks) != 1 || !strings.HasPrefix(marks[0][1], h.QueueID+" account=bob@campus.example ") || strings.Contains(headers, "trusted-sender") {
		t.Fatalf("hold marks in the queue file: %q\n%s", marks, headers)
	}
}
