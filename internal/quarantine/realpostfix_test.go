package quarantine

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/postfixtest"
	"github.com/mailbrake/mailbrake/internal/store/sqlite"
)

// TestHoldQueuedOfRealPostfix: against a real Postfix queue, a restricted
// account's mail is found by its SASL login when it used another MAIL
// FROM and the login is not an address, and by the last copy of the
// account header a trusted relay added (a client's earlier copy does not
// name the account), besides its envelope sender; another account's mail
// stays queued; a message gone from the queue while postcat reads does
// not stop the others being read.
func TestHoldQueuedOfRealPostfix(t *testing.T) {
	in := postfixtest.Start(t, postfixtest.Options{SASL: true, Users: map[string]string{"jdoe": "secret-pass-1"},
		ExtraMainCF: map[string]string{"defer_transports": "smtp"}})
	byLogin := in.Send(t, postfixtest.SendOptions{AuthUser: "jdoe", AuthPassword: "secret-pass-1", From: "alias@example.com", To: []string{"x@example.net"}})
	relayed := in.Send(t, postfixtest.SendOptions{From: "persona@example.com", To: []string{"y@example.net"},
		Data: "X-Authenticated-User: victim@campus.example\nSubject: hi\nX-Authenticated-User: eve@campus.example\n\nbody\n"})
	forgedOnly := in.Send(t, postfixtest.SendOptions{From: "other@example.com", To: []string{"z@example.net"},
		Data: "X-Authenticated-User: eve@campus.example\nSubject: hi\nX-Authenticated-User: mallory@campus.example\n\nbody\n"})
	bySender := in.Send(t, postfixtest.SendOptions{From: "Eve@Campus.Example", To: []string{"w@example.net"}})
	for _, r := range []postfixtest.SendResult{byLogin, relayed, forgedOnly, bySender} {
		if !r.Accepted {
			t.Fatalf("not queued: %s", r.Transcript)
		}
	}
	in.WaitQueue(t, 15*time.Second, func(q []postfixtest.QueueEntry) bool {
		n := 0
		for _, e := range q {
			if e.QueueName == "deferred" {
				n++
			}
		}
		return n == 4
	})
	pf := &Postfix{ConfigDir: in.ConfigDir, Postsuper: "/usr/sbin/postsuper", Postqueue: "/usr/sbin/postqueue", Postcat: "/usr/sbin/postcat"}
	ctx := context.Background()

	// postcat stops at a queue file it cannot open: the rest are read.
	origins, err := pf.Origins(ctx, []string{byLogin.QueueID, "GONE0123456", relayed.QueueID}, "X-Authenticated-User")
	if err != nil || len(origins) != 2 || origins[0].SASLUsername != "jdoe" || !slices.Equal(origins[1].Header, []string{"victim@campus.example", "eve@campus.example"}) {
		t.Fatalf("origins %+v, %v", origins, err)
	}

	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := &Service{Store: st, Queue: pf, Log: slog.New(slog.DiscardHandler), AccountHeader: "X-Authenticated-User"}
	held, err := s.HoldQueuedOf(ctx, map[string]bool{"jdoe": true, "eve@campus.example": true})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(held["eve@campus.example"])
	wantEve := []string{relayed.QueueID, bySender.QueueID}
	slices.Sort(wantEve)
	if !slices.Equal(held["jdoe"], []string{byLogin.QueueID}) || !slices.Equal(held["eve@campus.example"], wantEve) || len(held) != 2 {
		t.Fatalf("held %v", held)
	}
	q := in.Queue(t)
	for _, e := range q {
		want := "hold"
		if e.QueueID == forgedOnly.QueueID {
			want = "deferred"
		}
		if e.QueueName != want {
			t.Errorf("%s is in %s, want %s", e.QueueID, e.QueueName, want)
		}
	}
}
