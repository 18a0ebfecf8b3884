package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/postfixtest"
	"github.com/mailbrake/mailbrake/internal/store"
)

// TestRestrictAccount: restricting an account moves its deferred mail to
// the hold queue and holds its next message; unrestricting ends that.
func TestRestrictAccount(t *testing.T) {
	// defer_transports keeps relayed mail in the deferred queue.
	in, d := startPair(t, true, false, postfixtest.Options{ExtraMainCF: map[string]string{"defer_transports": "smtp"}}, "")
	send := func(from, subject string) postfixtest.SendResult { return sendHello(t, in, from, subject) }
	queued := send("eve@campus.example", "queued before")
	other := send("frank@campus.example", "someone else")
	in.WaitQueue(t, 10*time.Second, func(q []postfixtest.QueueEntry) bool {
		return attempted(q, queued.QueueID) && attempted(q, other.QueueID)
	})

	out := d.mustCLI("account", "restrict", "eve@campus.example", "--reason", "spam run confirmed by the help desk")
	if !strings.Contains(out, "restricted") {
		t.Fatalf("restrict: %q", out)
	}
	q := in.Queue(t)
	if got := inQueue(q, queued.QueueID); got != "hold" {
		t.Fatalf("eve's deferred message is in %q, want hold", got)
	}
	if got := inQueue(q, other.QueueID); got != "deferred" {
		t.Fatalf("frank's message moved to %q", got)
	}

	next := send("eve@campus.example", "after restrict")
	in.WaitQueue(t, 10*time.Second, func(q []postfixtest.QueueEntry) bool { return inQueue(q, next.QueueID) == "hold" })
	h := d.waitHold(next.QueueID)
	if strings.Join(h.Reasons, ",") != "account-restricted" {
		t.Fatalf("hold reasons %v", h.Reasons)
	}

	var detail struct {
		store.Account
		History []store.AuditEntry `json:"history"`
	}
	if err := json.Unmarshal([]byte(d.mustCLI("account", "show", "eve@campus.example", "--json")), &detail); err != nil {
		t.Fatal(err)
	}
	if detail.State != store.AccountRestricted || !strings.HasPrefix(detail.StateBy, "cli:") || detail.Reason != "spam run confirmed by the help desk" || len(detail.History) < 2 {
		t.Fatalf("account show: %+v", detail)
	}
	var list []store.Account
	if err := json.Unmarshal([]byte(d.mustCLI("account", "list", "--state", "restricted", "--json")), &list); err != nil || len(list) != 1 {
		t.Fatalf("account list: %v %+v", err, list)
	}
	if _, err := d.cli("account", "restrict", "eve@campus.example"); err == nil {
		t.Fatal("restrict without --reason succeeded")
	}

	d.mustCLI("account", "unrestrict", "eve@campus.example", "--reason", "password reset, user contacted")
	after := send("eve@campus.example", "after unrestrict")
	in.WaitQueue(t, 10*time.Second, func(q []postfixtest.QueueEntry) bool { return attempted(q, after.QueueID) })

	// The state survives a restart of the daemon.
	d.mustCLI("account", "restrict", "eve@campus.example", "--reason", "again")
	d.stop()
	d.start()
	again := send("eve@campus.example", "after restart")
	in.WaitQueue(t, 10*time.Second, func(q []postfixtest.QueueEntry) bool { return inQueue(q, again.QueueID) == "hold" })
}
