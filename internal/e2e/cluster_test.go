package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/pgtest"
	"github.com/mailbrake/mailbrake/internal/postfixtest"
	"github.com/mailbrake/mailbrake/internal/redistest"
	"github.com/mailbrake/mailbrake/internal/store"
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
	key := sharedNoveltyKey(t)
	config := func(node string) string {
		return fmt.Sprintf(`cluster:
  node: %s
  redis: {address: %q, password_file: %q, prefix: "e2e:"}
novelty: {key_file: %q}
rules:
  - name: run-over-two-mtas
    reason: rate-recipients-hour
    stage: eom
    when: [{fact: recipients_1h, gt: 500}]
    verdict: hold
`, node, rs.Addr, pw, key)
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
		// The recipient memory is shared too: 600 first-time recipients
		// known on both nodes, though each MTA carried 300.
		if n := a.Novelty; n == nil || n.FirstTime1h != 600 || n.Known != 600 {
			t.Errorf("node %d's novelty %+v, want the shared 600 first-time and known recipients", i, n)
		}
		if m := d.httpGet("/metrics"); !strings.Contains(m, `mailbrake_cluster_degraded{what="counts"} 0`) {
			t.Errorf("node %d: no healthy cluster gauge", i)
		}
	}
	// A third node that made its own novelty key is refused at start: its
	// hashes would make every recipient of the shared memory look new.
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mailbrake.yaml")
	if err := writeFile(cfg, fmt.Sprintf("data_dir: %s\nhttp: {listen: %s}\npolicy: {enabled: false}\nmilter: {enabled: false}\npostfix: {config_dir: %s, sync_interval: 0s}\n%s",
		filepath.Join(dir, "data"), freeAddr(t), inA.ConfigDir, strings.ReplaceAll(config("mta-c"), key, filepath.Join(dir, "own.key")))); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(binary, "serve", "--config", cfg).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "novelty.key_file") || !strings.Contains(string(out), "copy novelty.key_file from a node of the cluster") {
		t.Fatalf("a node with another novelty key: %v\n%s", err, out)
	}
}

// TestClusterSharedStates is issue 15's scenario (c): an account
// restricted on node B is restricted on node A before its next message —
// A puts the account's mail in its own queue on hold and holds what it
// sends next — and a restriction made while Redis is down reaches the
// other node when Redis is back.
func TestClusterSharedStates(t *testing.T) {
	rs := redistest.New(t)
	pw := filepath.Join(t.TempDir(), "redis.pw")
	if err := os.WriteFile(pw, []byte(rs.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The nodes run as the ACL user docs/cluster.md tells admins to
	// create, with its rules as written there.
	aclPW, aclCreate := aclUser(t, rs, "e2e:")
	if err := os.WriteFile(pw, []byte(aclPW+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key := sharedNoveltyKey(t)
	config := func(node string) string {
		return fmt.Sprintf("cluster:\n  node: %s\n  redis: {address: %q, username: mailbrake, password_file: %q, prefix: \"e2e:\"}\nnovelty: {key_file: %q}\n", node, rs.Addr, pw, key)
	}
	// defer_transports keeps relayed mail in the deferred queue.
	opts := postfixtest.Options{ExtraMainCF: map[string]string{"defer_transports": "smtp"}}
	inA, dA := startPair(t, true, false, opts, config("mta-a"))
	inB, dB := startPair(t, true, false, opts, config("mta-b"))
	send := func(in *postfixtest.Instance, from, subject string) postfixtest.SendResult {
		r := in.Send(t, postfixtest.SendOptions{From: from, To: recipients(2, "dest.example"),
			Headers: map[string]string{"User-Agent": "Mozilla Thunderbird", "Subject": subject}, Body: "hello\n"})
		if !r.Accepted {
			t.Fatalf("%s not accepted: %s", subject, r.Transcript)
		}
		return r
	}
	queued := send(inA, "eve@campus.example", "queued on A")
	inA.WaitQueue(t, 10*time.Second, func(q []postfixtest.QueueEntry) bool { return attempted(q, queued.QueueID) })

	dB.mustCLI("account", "restrict", "eve@campus.example", "--reason", "spam run seen by the help desk")
	// A moves eve's queued mail to its hold queue, and says why.
	inA.WaitQueue(t, 15*time.Second, func(q []postfixtest.QueueEntry) bool { return inQueue(q, queued.QueueID) == "hold" })
	a := dA.account("eve@campus.example")
	if a.State != store.AccountRestricted || !strings.HasPrefix(a.StateBy, "cli:") || a.Reason != "spam run seen by the help desk" {
		t.Fatalf("node A shows %+v", a.Account)
	}
	var fromB bool
	for _, h := range a.History {
		fromB = fromB || (h.Actor == "cluster:mta-b" && h.Action == "account-state")
	}
	if !fromB {
		t.Errorf("node A's history does not say node B restricted the account: %+v", a.History)
	}
	next := send(inA, "eve@campus.example", "after restrict on B")
	if h := dA.waitHold(next.QueueID); strings.Join(h.Reasons, ",") != "account-restricted" {
		t.Fatalf("node A held eve's next message for %v", h.Reasons)
	}

	// Lifted on A: B lets eve's mail go again.
	dA.mustCLI("account", "unrestrict", "eve@campus.example", "--reason", "password reset, user called")
	waitState(t, dB, "eve@campus.example", store.AccountNormal)
	after := send(inB, "eve@campus.example", "after unrestrict on A")
	inB.WaitQueue(t, 10*time.Second, func(q []postfixtest.QueueEntry) bool { return attempted(q, after.QueueID) })

	// A restriction made while Redis is down is written when it is back
	// (the Redis restart lost everything it had) and reaches A.
	rs.Stop()
	dB.mustCLI("account", "restrict", "frank@campus.example", "--reason", "restricted during the outage")
	rs.Start()
	aclCreate() // the restarted Redis has no ACL file here
	waitState(t, dA, "frank@campus.example", store.AccountRestricted)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(dB.httpGet("/metrics"), "mailbrake_cluster_states_pending 0"); {
		if time.Now().After(deadline) {
			t.Fatal("node B: a state change still pending after Redis is back")
		}
		time.Sleep(100 * time.Millisecond)
	}
	late := send(inA, "frank@campus.example", "after the outage")
	if h := dA.waitHold(late.QueueID); strings.Join(h.Reasons, ",") != "account-restricted" {
		t.Fatalf("node A held frank's message for %v", h.Reasons)
	}
}

// waitState waits until d shows account in state.
func waitState(t *testing.T, d *daemon, account string, state store.AccountState) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		a := d.account(account)
		if a.State == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is %s on the node, want %s", account, a.State, state)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// sharedNoveltyKey is the novelty.key_file every node of a test cluster
// names, as docs/cluster.md tells admins to copy it: the first node to
// start creates it. Nodes with different keys are refused (the shared
// recipient memory would be unreadable to them).
func sharedNoveltyKey(t *testing.T) string {
	return filepath.Join(t.TempDir(), "novelty.key")
}

// aclUser creates the Redis ACL user of docs/cluster.md, its key and
// channel patterns moved to prefix, and returns its password and a
// function that creates it again (after a restart). At the end of the
// test, Redis's ACL log must be empty: nothing was refused to the user.
func aclUser(t *testing.T, rs *redistest.Instance, prefix string) (string, func()) {
	t.Helper()
	doc, err := os.ReadFile("../../docs/cluster.md")
	if err != nil {
		t.Fatal(err)
	}
	var line string
	for l := range strings.Lines(string(doc)) {
		if strings.HasPrefix(l, "ACL SETUSER mailbrake ") {
			line = strings.TrimSpace(l)
		}
	}
	if line == "" {
		t.Fatal("docs/cluster.md has no ACL SETUSER line")
	}
	const password = "acl-user-password"
	line = strings.ReplaceAll(strings.ReplaceAll(line, ">PASSWORD", ">"+password), "mailbrake:*", prefix+"*")
	var args []any
	for _, f := range strings.Fields(line) {
		args = append(args, f)
	}
	create := func() {
		c := redis.NewClient(&redis.Options{Addr: rs.Addr, Password: rs.Password})
		defer c.Close()
		if err := c.Do(t.Context(), args...).Err(); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		// Refusals logged before the user existed (after a restart)
		// are not the rules' fault.
		if err := c.Do(t.Context(), "ACL", "LOG", "RESET").Err(); err != nil {
			t.Fatal(err)
		}
	}
	create()
	t.Cleanup(func() {
		// Whatever the user was refused is in Redis's ACL log.
		c := redis.NewClient(&redis.Options{Addr: rs.Addr, Password: rs.Password})
		defer c.Close()
		if log, err := c.Do(context.Background(), "ACL", "LOG").Slice(); err == nil && len(log) > 0 {
			t.Errorf("Redis refused the ACL user of docs/cluster.md: %v", log)
		}
	})
	return password, create
}

// TestClusterRecordsShared is issue 15's scenario (b): with one Redis and
// one PostgreSQL, a 60-recipient zclient message held on node A shows on
// node B, naming node A, and node B's admin releases it: node A carries
// out the release in its own Postfix queue and the message is delivered
// once. A node that does not answer makes a release wait, never succeed,
// and the other node lists it as down; while PostgreSQL does not answer,
// the web UI says the records are read-only.
func TestClusterRecordsShared(t *testing.T) {
	rs := redistest.New(t)
	pg := pgtest.New(t)
	db := pg.NewDB(t)
	dir := t.TempDir()
	rpw, ppw := filepath.Join(dir, "redis.pw"), filepath.Join(dir, "pg.pw")
	if err := os.WriteFile(rpw, []byte(rs.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ppw, []byte(pg.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key := sharedNoveltyKey(t)
	config := func(node string) string {
		return fmt.Sprintf("cluster:\n  node: %s\n  redis: {address: %q, password_file: %q, prefix: \"e2e:\"}\n  postgres: {url: %q, password_file: %q}\nnovelty: {key_file: %q}\n",
			node, rs.Addr, rpw, pg.ConnString(db), ppw, key)
	}
	inA, dA := startPair(t, true, false, postfixtest.Options{}, config("mta-a"))
	_, dB := startPair(t, true, false, postfixtest.Options{}, config("mta-b"))
	// An admin of the web UI on node B (users are records: made while
	// PostgreSQL answers; the session lives in B's memory).
	addUser(t, dB, "admin", "admin", "an-Admin-Password-4-B")
	webB := webSession(t, dB, "admin", "an-Admin-Password-4-B")
	token := strings.TrimSpace(dB.mustCLI("token", "create", "monitoring", "--role", "viewer"))
	if nl := nodesOf(t, dB); !nl.Shared || len(nl.Nodes) != 2 || nl.Nodes[0].Name != "mta-a" || nl.Nodes[0].State != api.NodeUp ||
		nl.Nodes[1].Name != "mta-b" || !nl.Nodes[1].Self || nl.Nodes[0].Self {
		t.Fatalf("node B lists %+v", nl)
	}

	r := inA.Send(t, postfixtest.SendOptions{From: "alice@campus.example", To: recipients(60, "dest.example"),
		Headers: map[string]string{"X-Mailer": zclient, "Subject": "cluster release"}, Body: "spam\n"})
	if !r.Accepted {
		t.Fatalf("not accepted: %s", r.Transcript)
	}
	h := dA.waitHold(r.QueueID)
	if h.Node != "mta-a" {
		t.Fatalf("hold recorded on node %q, want mta-a", h.Node)
	}
	onB := dB.holdByQueueID(r.QueueID)
	if onB == nil || onB.ID != h.ID || onB.Node != "mta-a" {
		t.Fatalf("node B shows %+v", onB)
	}
	// Node B's queue sync leaves node A's hold alone.
	dB.mustCLI("quarantine", "sync")
	if h2 := dB.holdByQueueID(r.QueueID); h2.State != store.HoldHeld {
		t.Fatalf("node B's sync changed node A's hold: %+v", h2)
	}

	out := dB.mustCLI("quarantine", "release", fmt.Sprint(h.ID))
	if !strings.Contains(out, "released") {
		t.Fatalf("release on node B: %q", out)
	}
	inA.Sink.WaitRecipients(t, 60, 20*time.Second)
	inA.WaitQueueEmpty(t, 20*time.Second)
	inA.Flush(t)
	time.Sleep(2 * time.Second)
	if got := bySubject(t, inA.Sink, "cluster release"); countRcpts(got) != 60 {
		t.Fatalf("released message delivered to %d recipients (%d transactions), want 60 once", countRcpts(got), len(got))
	}
	if h2 := dA.holdByQueueID(r.QueueID); h2.State != store.HoldReleased || !strings.HasPrefix(h2.StateBy, "cli:") {
		t.Fatalf("state after release: %+v", h2)
	}

	// Node A stopped: a delete asked on node B waits, then says node A
	// has not answered; the hold stays held; node A carries it out when
	// it is back.
	r2 := inA.Send(t, postfixtest.SendOptions{From: "bob@campus.example", To: recipients(60, "dest.example"),
		Headers: map[string]string{"X-Mailer": zclient, "Subject": "cluster delete"}, Body: "spam\n"})
	h2 := dA.waitHold(r2.QueueID)
	dA.stop()
	out, err := dB.cli("quarantine", "delete", fmt.Sprint(h2.ID))
	if err == nil || !strings.Contains(err.Error()+out, "has not answered") {
		t.Fatalf("delete while node A is down: err %v, %q", err, out)
	}
	if got := dB.holdByQueueID(r2.QueueID); got.State != store.HoldHeld {
		t.Fatalf("hold changed while its node was down: %+v", got)
	}
	// Node B lists node A as down — the delete waited longer than three
	// heartbeats since A's last — with the delete waiting for it, in the
	// CLI and on the web UI's Nodes page.
	nl := nodesOf(t, dB)
	if a, b := nl.Nodes[0], nl.Nodes[1]; a.Name != "mta-a" || a.State != api.NodeDown || a.PendingCommands != 1 || b.State != api.NodeUp || !b.Self {
		t.Fatalf("node B lists %+v while node A is down", nl)
	}
	if out := dB.mustCLI("nodes"); !regexp.MustCompile(`(?m)^mta-a\s+down\s.*\s1$`).MatchString(out) || !regexp.MustCompile(`(?m)^mta-b \(this node\)\s+up\s`).MatchString(out) {
		t.Fatalf("mailbrake nodes on B:\n%s", out)
	}
	if code, page := webB("/nodes"); code != 200 || !regexp.MustCompile(`(?s)<td>mta-a</td><td><span class="state state-down">down</span>.*?<td class="num">1</td>`).MatchString(page) {
		t.Fatalf("node B's Nodes page: %d\n%s", code, page)
	}
	dA.start()
	deadline := time.Now().Add(30 * time.Second)
	for dB.holdByQueueID(r2.QueueID).State != store.HoldDeleted {
		if time.Now().After(deadline) {
			t.Fatalf("node A did not carry out the pending delete: %+v", dB.holdByQueueID(r2.QueueID))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if q := inA.Held(t); len(q) != 0 {
		t.Fatalf("node A's hold queue after the delete: %+v", q)
	}
	if a := nodesOf(t, dB).Nodes[0]; a.Name != "mta-a" || a.State != api.NodeUp || a.PendingCommands != 0 {
		t.Fatalf("node A back: node B lists %+v", a)
	}

	// PostgreSQL stopped mid-stream: the message is still held (Postfix's
	// hold queue), its record kept by node A and written once PostgreSQL
	// is back — one record.
	pg.Stop()
	r3 := inA.Send(t, postfixtest.SendOptions{From: "carol@campus.example", To: recipients(60, "dest.example"),
		Headers: map[string]string{"X-Mailer": zclient, "Subject": "while postgres is down"}, Body: "spam\n"})
	if !r3.Accepted {
		t.Fatalf("not accepted while PostgreSQL is down: %s", r3.Transcript)
	}
	inA.WaitQueue(t, 20*time.Second, func(q []postfixtest.QueueEntry) bool { return inQueue(q, r3.QueueID) == "hold" })
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(dA.httpGet("/metrics"), "mailbrake_holds_unwritten 1"); {
		if time.Now().After(deadline) {
			t.Fatal("node A does not keep the hold it could not write")
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Meanwhile node B's web UI says the records are read-only and why,
	// its API status carries the flag, and a change is refused in words
	// (503), not with the driver's error.
	const banner = "Records are read-only: PostgreSQL does not answer."
	if code, page := webB("/"); code != http.StatusServiceUnavailable || !strings.Contains(page, banner) || !strings.Contains(page, "hold queue") {
		t.Fatalf("node B's dashboard while PostgreSQL is down: %d\n%s", code, page)
	}
	if code, page := webB("/config"); code != 200 || !strings.Contains(page, banner) {
		t.Fatalf("node B's configuration page while PostgreSQL is down: %d\n%s", code, page)
	}
	var st api.Status
	if code, body := webB("/api/v1/status"); code != 200 || json.Unmarshal([]byte(body), &st) != nil || !st.ReadOnly || st.Records != api.RecordsPostgres || st.Node != "mta-b" {
		t.Fatalf("node B's API status while PostgreSQL is down: %d %s", code, body)
	}
	// An API token cannot be checked: said so, not refused as unknown.
	req, _ := http.NewRequest("GET", "http://"+dB.httpAddr()+"/api/v1/status", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if res, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "cannot check the API token: PostgreSQL does not answer") {
			t.Fatalf("a token while PostgreSQL is down: %d %s", res.StatusCode, b)
		}
	}
	if out, err := dB.cli("account", "restrict", "mallory@campus.example", "--reason", "while postgres is down"); err == nil ||
		!strings.Contains(err.Error(), "PostgreSQL does not answer") || strings.Contains(err.Error(), "dial") {
		t.Fatalf("a change while PostgreSQL is down: %v %q", err, out)
	}
	pg.Start()
	h3 := dA.waitHold(r3.QueueID)
	if h3.Node != "mta-a" || h3.State != store.HoldHeld {
		t.Fatalf("hold written after the outage: %+v", h3)
	}
	var n int
	for _, h := range dB.holds() {
		if h.QueueID == r3.QueueID {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d records of the message held during the outage, want 1", n)
	}
	// PostgreSQL back: the banner goes within ops.RecordsCheckEvery.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		_, page := webB("/config")
		if !strings.Contains(page, banner) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("node B still says the records are read-only with PostgreSQL back")
		}
	}
}

// nodesOf returns `mailbrake nodes --json` on d.
func nodesOf(t *testing.T, d *daemon) api.NodeList {
	t.Helper()
	var nl api.NodeList
	if out := d.mustCLI("nodes", "--json"); json.Unmarshal([]byte(out), &nl) != nil {
		t.Fatalf("nodes --json: %s", out)
	}
	return nl
}

// webSession signs in to d's web UI and returns a GET of a path with the
// session: its status and body.
func webSession(t *testing.T, d *daemon, user, pw string) func(path string) (int, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	base := "http://" + d.httpAddr()
	res, err := c.PostForm(base+"/login", url.Values{"name": {user}, "password": {pw}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.Request.URL.Path != "/" {
		t.Fatalf("login as %s: %d at %s", user, res.StatusCode, res.Request.URL)
	}
	return func(path string) (int, string) {
		t.Helper()
		res, err := c.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, string(b)
	}
}

// TestClusterSharedLearning: what one node's detectors learn reaches the
// other through Redis — a phish received through MTA A is remembered on
// node B, whose user's reply to it through MTA B is held.
func TestClusterSharedLearning(t *testing.T) {
	rs := redistest.New(t)
	pw := filepath.Join(t.TempDir(), "redis.pw")
	if err := os.WriteFile(pw, []byte(rs.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key := sharedNoveltyKey(t)
	config := func(node string) string {
		// Loopback is not a trusted relay: unauthenticated mail from the
		// test client is inbound; the user's reply is a SASL submission.
		return fmt.Sprintf("identity: {trusted_networks: [192.0.2.0/24]}\ncluster:\n  node: %s\n  redis: {address: %q, password_file: %q, prefix: \"e2e:\"}\nnovelty: {key_file: %q}\n",
			node, rs.Addr, pw, key)
	}
	inA, _ := startPair(t, true, false, postfixtest.Options{}, config("mta-a"))
	inB, dB := startPair(t, true, false, postfixtest.Options{SASL: true, Users: map[string]string{"victim@campus.example": "pw-for-test"}}, config("mta-b"))

	phish := inA.Send(t, postfixtest.SendOptions{From: "it-desk@phish.example", To: []string{"victim@campus.example"},
		Headers: map[string]string{
			"Subject":    "[Fraud Alert: Suspected SPAM] Your mailbox is almost full",
			"Message-Id": "<quota-7@phish.example>",
			"From":       "IT Help Desk <it-desk@phish.example>",
			"Reply-To":   "Help Desk <verify@drop.example>",
		}, Body: "Reply with your username and password.\n"})
	if !phish.Accepted {
		t.Fatalf("inbound phish not accepted: %s", phish.Transcript)
	}
	inA.Sink.WaitMessages(t, 1, 20*time.Second)
	// Node B has applied A's two entries (Message-ID and Reply-To).
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(dB.httpGet("/metrics"), `mailbrake_cluster_learned_applied_total{result="applied"} 2`) {
		if time.Now().After(deadline) {
			t.Fatalf("node B did not apply what node A learned:\n%s", dB.httpGet("/metrics"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	reply := inB.Send(t, postfixtest.SendOptions{From: "victim@campus.example", To: []string{"verify@drop.example"},
		AuthUser: "victim@campus.example", AuthPassword: "pw-for-test",
		Headers: map[string]string{"Subject": "Re: Your mailbox is almost full", "User-Agent": "Mozilla Thunderbird"},
		Body:    "here you are\n"})
	if !reply.Accepted {
		t.Fatalf("reply not accepted: %s", reply.Transcript)
	}
	h := dB.waitHold(reply.QueueID)
	if strings.Join(h.Reasons, ",") != "reply-to-suspected-phish" || h.Account != "victim@campus.example" {
		t.Fatalf("hold on B: %+v", h)
	}
}
