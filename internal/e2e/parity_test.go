package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/postfixtest"
	"github.com/mailbrake/mailbrake/internal/replay"
)

// TestReplayMatchesDaemon sends a mix of mail through a real Postfix with
// the daemon on both paths, then replays exactly what was sent (envelope,
// client, the raw message) with the same configuration, and compares
// message by message: replay and the live daemon give the same verdict
// (issue 12, item 6).
func TestReplayMatchesDaemon(t *testing.T) {
	extra := "novelty: {learning: 0s}\n"
	in, d := startPair(t, true, true, postfixtest.Options{}, extra)
	cfg, err := config.Load([]byte(extra))
	if err != nil {
		t.Fatal(err)
	}

	type sent struct {
		queueID string
		rec     replay.Record
	}
	var all []sent
	send := func(from string, to []string, xMailer, subject, body string) {
		t.Helper()
		var data strings.Builder
		fmt.Fprintf(&data, "From: %s\nTo: %s\nSubject: %s\nMessage-Id: <%d.%s>\nX-Mailer: %s\n\n%s", from, to[0], subject, len(all), from, xMailer, body)
		r := in.Send(t, postfixtest.SendOptions{From: from, To: to, Data: data.String()})
		if !r.Accepted {
			t.Fatalf("not accepted: %s", r.Transcript)
		}
		raw := strings.ReplaceAll(data.String(), "\n", "\r\n")
		all = append(all, sent{r.QueueID, replay.Record{Time: time.Now().UTC(), Account: from, Sender: from, Recipients: to,
			Client: xMailer, ClientIP: "127.0.0.1", Raw: []byte(raw)}})
	}
	run := "I am writing to share a private investment opportunity with a guaranteed monthly return that a few colleagues and I have been part of; reply for the brochure.\n"
	lure := "Your mailbox has exceeded its storage quota and will be suspended today. Verify your account at https://webmail-quota.example.net/verify and sign in with your password.\n"
	// The scripted-client trap.
	send("alice@campus.example", recipients(60, "dest.example"), zclient, "offer", "Hello,\n\n"+run)
	// The AJAX client with as many recipients: through.
	send("bob@campus.example", recipients(60, "bob.example"), ajax, "team news", "Hi all,\n\nthe minutes of Monday's meeting are attached, with the dates of the next three meetings and the budget table.\n")
	// A low-and-slow run: the same text to three new people each time.
	for i := range 6 {
		send("carol@campus.example", recipients(3, fmt.Sprintf("c%d.example", i)), ajax, "a private opportunity", fmt.Sprintf("Dear friend %d,\n\n%s", i, run))
	}
	// Internal phishing: one colleague a message.
	for i := range 4 {
		send("erin@campus.example", []string{fmt.Sprintf("colleague%d@campus.example", i)}, ajax, "Mailbox quota", fmt.Sprintf("Dear colleague %d,\n\n%s", i, lure))
	}
	// Ordinary mail.
	send("dave@campus.example", []string{"friend@dest.example"}, ajax, "lunch", "Shall we have lunch on Thursday at the usual place near the library, at noon?\n")

	// What the daemon did: held (a hold record) or delivered (gone from
	// the queue without one).
	live := make([]string, len(all))
	deadline := time.Now().Add(30 * time.Second)
	for i, s := range all {
		for {
			if h := d.holdByQueueID(s.queueID); h != nil {
				live[i] = "hold " + strings.Join(h.Reasons, ",")
				break
			}
			if q := in.Queue(t); inQueue(q, s.queueID) == "" {
				live[i] = "allow"
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("message %d (%s) neither held nor delivered", i, s.queueID)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	var input bytes.Buffer
	enc := json.NewEncoder(&input)
	for _, s := range all {
		enc.Encode(s.rec)
	}
	var out bytes.Buffer
	if _, err := replay.Run(context.Background(), cfg, &input, &out, nil); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(&out)
	var holds int
	for i := 0; ; i++ {
		var o replay.Output
		if err := dec.Decode(&o); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		got := o.Action
		if got == "hold" {
			got += " " + strings.Join(o.Reasons, ",")
			holds++
		}
		if got != live[i] {
			t.Errorf("message %d from %s: replay %q, daemon %q", i, all[i].rec.Account, got, live[i])
		}
	}
	// The mix is not trivial: the trap, the run and the phish are held.
	if holds < 4 {
		t.Errorf("only %d holds; the scenario lost its point: %q", holds, live)
	}
	t.Logf("daemon and replay agree on %d messages: %q", len(all), live)
}
