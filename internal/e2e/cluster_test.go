package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/postfixtest"
	"github.com/mailbrake/mailbrake/internal/redistest"
)

// TestClusterSharedCounts is issue 15's scenario (a): two Postfix
// instances, each with its own mailbrake node, sharing one real Redis. A
// run of 12 messages of 50 recipients, sent alternately through both
// MTAs, is held from the message that takes the account past 500
// recipients in an hour — the 11th, as on one node — although neither
// node saw more than 300 recipients itself; both nodes show the shared
// count.
func TestClusterSharedCounts(t *testing.T) {
	rs := redistest.New(t)
	pw := filepath.Join(t.TempDir(), "redis.pw")
	if err := os.WriteFile(pw, []byte(rs.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	config := func(node string) string {
		return fmt.Sprintf(`cluster:
  node: %s
  redis: {address: %q, password_file: %q, prefix: "e2e:"}
rules:
  - name: run-over-two-mtas
    reason: rate-recipients-hour
    stage: eom
    when: [{fact: recipients_1h, gt: 500}]
    verdict: hold
`, node, rs.Addr, pw)
	}
	inA, dA := startPair(t, true, false, postfixtest.Options{}, config("mta-a"))
	inB, dB := startPair(t, true, false, postfixtest.Options{}, config("mta-b"))
	mtas := []*postfixtest.Instance{inA, inB}
	nodes := []*daemon{dA, dB}
	var qids []string
	for i := range 12 {
		r := mtas[i%2].Send(t, postfixtest.SendOptions{From: "carol@campus.example", To: recipients(50, fmt.Sprintf("d%d.example", i)),
			Headers: map[string]string{"X-Mailer": "Mozilla Thunderbird 128.0", "Subject": fmt.Sprintf("newsletter part %d", i)}, Body: "Read it online.\n"})
		if !r.Accepted {
			t.Fatalf("message %d not accepted: %s", i+1, r.Transcript)
		}
		qids = append(qids, r.QueueID)
	}
	// Messages 11 and 12 are held, one on each node; the first ten go out.
	for i, want := range []int{10, 11} {
		h := nodes[i].waitHold(qids[want])
		if h.Reasons[0] != "rate-recipients-hour" {
			t.Fatalf("message %d held for %v", want+1, h.Reasons)
		}
	}
	for i, in := range mtas {
		in.Sink.WaitRecipients(t, 250, 30*time.Second)
		if n := len(nodes[i].holds()); n != 1 {
			t.Errorf("node %d holds %d messages, want 1", i, n)
		}
		if q := in.Held(t); len(q) != 1 || q[0].QueueID != qids[10+i] {
			t.Errorf("MTA %d's hold queue: %+v", i, q)
		}
	}
	for i, d := range nodes {
		var a api.AccountDetail
		if err := json.Unmarshal([]byte(d.mustCLI("account", "show", "carol@campus.example", "--json")), &a); err != nil {
			t.Fatal(err)
		}
		if a.Counters.Recipients1h != 600 || a.Counters.Messages1h != 12 {
			t.Errorf("node %d shows %+v, want the shared 12 messages, 600 recipients", i, a.Counters)
		}
		if m := d.httpGet("/metrics"); !strings.Contains(m, `mailbrake_cluster_degraded{what="counts"} 0`) {
			t.Errorf("node %d: no healthy cluster gauge", i)
		}
	}
}
