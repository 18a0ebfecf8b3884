package e2e

import (
	"context"
	"encoding/hex"
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
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
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
	rs, pw := clusterRedis(t)
	key := sharedNoveltyKey(t)
	config := func(node string) string {
		return fmt.Sprintf(`cluster:
  node: %s
  redis: {address: %q, password_file: %q, prefix: "e2e:"}
novelty: {key_file: %q}
`, node, rs.Addr, pw, key) + splitRunRule
	}
	inA, dA := startPair(t, true, false, postfixtest.Options{}, config("mta-a"))
	inB, dB := startPair(t, true, false, postfixtest.Options{}, config("mta-b"))
	mtas := []*postfixtest.Instance{inA, inB}
	nodes := []*daemon{dA, dB}
	// Messages 11 and 12 are held, one on each node; the first ten go out.
	qids := sendSplitRun(t, mtas, nodes)
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
	rs, pw := clusterRedis(t)
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
	queued := sendHello(t, inA, "eve@campus.example", "queued on A")
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
	next := sendHello(t, inA, "eve@campus.example", "after restrict on B")
	if h := dA.waitHold(next.QueueID); strings.Join(h.Reasons, ",") != "account-restricted" {
		t.Fatalf("node A held eve's next message for %v", h.Reasons)
	}

	// Lifted on A: B lets eve's mail go again.
	dA.mustCLI("account", "unrestrict", "eve@campus.example", "--reason", "password reset, user called")
	waitState(t, dB, "eve@campus.example", store.AccountNormal)
	after := sendHello(t, inB, "eve@campus.example", "after unrestrict on A")
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
	late := sendHello(t, inA, "frank@campus.example", "after the outage")
	if h := dA.waitHold(late.QueueID); strings.Join(h.Reasons, ",") != "account-restricted" {
		t.Fatalf("node A held frank's message for %v", h.Reasons)
	}

	// One made while Redis is down by a node stopped before Redis is
	// back: the change was still pending when B stopped; B shares its
	// recorded states again as it starts, and it reaches A.
	rs.Stop()
	dB.mustCLI("account", "restrict", "gina@campus.example", "--reason", "restricted before a stop")
	dB.stop()
	rs.Start()
	aclCreate()
	dB.start()
	waitState(t, dA, "gina@campus.example", store.AccountRestricted)
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

// clusterRedis starts the Redis of a test cluster and writes its password
// file (cluster.redis.password_file).
func clusterRedis(t *testing.T) (*redistest.Instance, string) {
	t.Helper()
	rs := redistest.New(t)
	pw := filepath.Join(t.TempDir(), "redis.pw")
	if err := os.WriteFile(pw, []byte(rs.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return rs, pw
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

// sharedStores is what the nodes of a cluster test share: one Redis, one
// PostgreSQL database, and the password files the nodes read them with.
type sharedStores struct {
	rs       *redistest.Instance
	pg       *pgtest.Instance
	db       string
	rpw, ppw string
	key      string // novelty.key_file, one for the cluster
	ckey     string // cluster.key_file: the shared states are signed
}

func newSharedStores(t *testing.T) *sharedStores {
	t.Helper()
	c := &sharedStores{rs: redistest.New(t), pg: pgtest.New(t)}
	c.db = c.pg.NewDB(t)
	c.key = sharedNoveltyKey(t)
	dir := t.TempDir()
	c.rpw, c.ppw = filepath.Join(dir, "redis.pw"), filepath.Join(dir, "pg.pw")
	if err := os.WriteFile(c.rpw, []byte(c.rs.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.ppw, []byte(c.pg.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.ckey = filepath.Join(dir, "cluster.key")
	if err := os.WriteFile(c.ckey, []byte(hex.EncodeToString([]byte("a test cluster's secret, 32 byte"))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// config is the cluster section of node's configuration.
func (c *sharedStores) config(node string) string {
	return fmt.Sprintf("cluster:\n  node: %s\n  key_file: %q\n  redis: {address: %q, password_file: %q, prefix: \"e2e:\"}\n  postgres: {url: %q, password_file: %q}\nnovelty: {key_file: %q}\n",
		node, c.ckey, c.rs.Addr, c.rpw, c.pg.ConnString(c.db), c.ppw, c.key)
}

// TestClusterRecordsShared is issue 15's scenario (b): with one Redis and
// one PostgreSQL, a 60-recipient zclient message held on node A shows on
// node B, naming node A, and node B's admin releases it: node A carries
// out the release in its own Postfix queue and the message is delivered
// once. A node that does not answer makes a release wait, never succeed,
// and the other node lists it as down; while PostgreSQL does not answer,
// the web UI says the records are read-only.
func TestClusterRecordsShared(t *testing.T) {
	shared := newSharedStores(t)
	pg := shared.pg
	inA, dA := startPair(t, true, false, postfixtest.Options{}, shared.config("mta-a"))
	_, dB := startPair(t, true, false, postfixtest.Options{}, shared.config("mta-b"))
	// An admin of the web UI on node B (users and sessions are records:
	// made while PostgreSQL answers).
	addUser(t, dB, "admin", "admin", "an-Admin-Password-4-B")
	webB := webSession(t, dB, "admin", "an-Admin-Password-4-B")
	// A session begun on node B is valid on node A (a load balancer may
	// send the next request to either); carol, demoted on node A, has
	// lost her admin session on node B at her next request, and removed
	// there, she is signed out on both.
	addUser(t, dA, "carol", "admin", "a-Carol-Password-4-A")
	carol := webSignIn(t, dB, "carol", "a-Carol-Password-4-A")
	const carolAdmin = `<span class="who">carol <span class="role">admin</span>`
	for _, d := range []*daemon{dA, dB} {
		if code, page := carol(d, "/users"); code != 200 || !strings.Contains(page, carolAdmin) {
			t.Fatalf("carol's session on %s: %d\n%.2000s", d.httpAddr(), code, page)
		}
	}
	addUser(t, dA, "carol", "viewer", "a-Carol-Password-4-A")
	if code, page := carol(dB, "/users"); code != 200 || strings.Contains(page, "Sign out") || !strings.Contains(page, `type="password"`) {
		t.Fatalf("carol demoted on node A: node B gives %d\n%.2000s", code, page)
	}
	carol = webSignIn(t, dB, "carol", "a-Carol-Password-4-A")
	if code, page := carol(dA, "/users"); code != http.StatusForbidden || !strings.Contains(page, `<span class="who">carol <span class="role">viewer</span>`) {
		t.Fatalf("carol signed in again as a viewer: node A gives %d\n%.2000s", code, page)
	}
	dA.mustCLI("user", "remove", "carol")
	for _, d := range []*daemon{dA, dB} {
		if code, page := carol(d, "/"); code != 200 || strings.Contains(page, "Sign out") || !strings.Contains(page, `type="password"`) {
			t.Fatalf("carol removed: %s gives %d\n%.2000s", d.httpAddr(), code, page)
		}
	}
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
	// Audited once, by the node that carried it out, in the asker's name.
	auditOnce := func(id int64, action string) {
		t.Helper()
		code, page := webB(fmt.Sprintf("/audit?target=hold:%d", id))
		rows := regexp.MustCompile(`<td>(cli:[^<]*)</td><td><code>`+action+`</code></td>\s*<td>.*?</td><td>([^<]*)</td>`).FindAllStringSubmatch(page, -1)
		if code != 200 || len(rows) != 1 || !strings.Contains(rows[0][2], "on node mta-a, asked on node mta-b") {
			t.Fatalf("audit of hold %d: %d, %q rows %q", id, code, action, rows)
		}
	}
	auditOnce(h.ID, "quarantine-release")

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
	// The hold's page on node B says the delete waits, and a release asked
	// meanwhile is refused rather than queued behind it.
	if code, page := webB(fmt.Sprintf("/quarantine/%d", h2.ID)); code != 200 || !regexp.MustCompile(`Delete asked by cli:[^ ]+ on node mta-b at .*waits for node mta-a`).MatchString(page) {
		t.Fatalf("node B's page of the waiting hold: %d\n%s", code, page)
	}
	if out, err := dB.cli("quarantine", "release", fmt.Sprint(h2.ID)); err == nil || !strings.Contains(err.Error()+out, "waits for node mta-a") {
		t.Fatalf("a release while the delete waits: err %v, %q", err, out)
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
	auditOnce(h2.ID, "quarantine-delete") // carried out long after the asker gave up
	if a := nodesOf(t, dB).Nodes[0]; a.Name != "mta-a" || a.State != api.NodeUp || a.PendingCommands != 0 {
		t.Fatalf("node A back: node B lists %+v", a)
	}

	// dave signs in on node A just before PostgreSQL stops: node A,
	// which checked his session then, goes on with it during the outage
	// (auth.OutageGrace); node B never checked it and says it cannot.
	addUser(t, dA, "dave", "viewer", "a-Dave-Password-4-A")
	dave := webSignIn(t, dA, "dave", "a-Dave-Password-4-A")

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
	if code, body := dave(dA, "/api/v1/status"); code != 200 || json.Unmarshal([]byte(body), &st) != nil || st.Node != "mta-a" {
		t.Fatalf("dave's session on node A while PostgreSQL is down: %d %s", code, body)
	}
	if code, body := dave(dB, "/api/v1/status"); code != http.StatusServiceUnavailable || !strings.Contains(body, "cannot check the session: PostgreSQL does not answer") {
		t.Fatalf("dave's session, never seen by node B, while PostgreSQL is down: %d %s", code, body)
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

	// MTA A is decommissioned: retired from node B once it is down, it
	// leaves every list, and its held message is marked deleted (its
	// queue went with it). Neither a node that is up nor the node asked
	// is retired.
	if out, err := dB.cli("nodes", "retire", "mta-a"); err == nil || !strings.Contains(err.Error()+out, "node mta-a is up") {
		t.Fatalf("retiring a node that is up: %v %q", err, out)
	}
	if out, err := dB.cli("nodes", "retire", "mta-b"); err == nil || !strings.Contains(err.Error()+out, "is this node") {
		t.Fatalf("retiring the node asked: %v %q", err, out)
	}
	dA.stop()
	for deadline := time.Now().Add(30 * time.Second); nodesOf(t, dB).Nodes[0].State != api.NodeDown; time.Sleep(500 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("node A not down after its stop")
		}
	}
	if out := dB.mustCLI("nodes", "retire", "mta-a"); !strings.Contains(out, "node mta-a retired: 1 held messages marked deleted") {
		t.Fatalf("retire: %q", out)
	}
	if nl := nodesOf(t, dB); len(nl.Nodes) != 1 || nl.Nodes[0].Name != "mta-b" {
		t.Fatalf("nodes after retiring mta-a: %+v", nl)
	}
	if h := dB.holdByQueueID(r3.QueueID); h.State != store.HoldDeleted || !strings.HasPrefix(h.StateBy, "cli:") {
		t.Fatalf("the retired node's hold: %+v", h)
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
	get := webSignIn(t, d, user, pw)
	return func(path string) (int, string) {
		t.Helper()
		return get(d, path)
	}
}

// webSignIn signs in to d's web UI and returns a GET of a path, with the
// session's cookie, on any node's web UI: its status and body (a
// redirect followed).
func webSignIn(t *testing.T, d *daemon, user, pw string) func(on *daemon, path string) (int, string) {
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
	cookies := jar.Cookies(&url.URL{Scheme: "http", Host: d.httpAddr(), Path: "/"})
	return func(on *daemon, path string) (int, string) {
		t.Helper()
		req, err := http.NewRequest("GET", "http://"+on.httpAddr()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		// The cookie as the browser holds it, for whichever node (a
		// jar keys cookies by host, and the nodes here share one).
		jar, _ := cookiejar.New(nil)
		jar.SetCookies(req.URL, cookies)
		c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
		res, err := c.Do(req)
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
	rs, pw := clusterRedis(t)
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

// stream sends messages through one MTA, one after another, until stopped:
// every other one a 60-recipient zclient message that must be held, the
// others three-recipient web-client messages that must be delivered, each
// from an account of its own (so no rate limit mixes in).
type stream struct {
	t    *testing.T
	in   *postfixtest.Instance
	name string
	done chan struct{}

	mu      sync.Mutex
	results []postfixtest.SendResult
	paused  bool
	idle    bool // paused, and no message on its way
	stopped bool
}

func startStream(t *testing.T, in *postfixtest.Instance, name string) *stream {
	s := &stream{t: t, in: in, name: name, done: make(chan struct{})}
	go s.run()
	t.Cleanup(s.stop)
	return s
}

func (s *stream) subject(i int) string { return fmt.Sprintf("stream %s %d", s.name, i) }

// mustHold reports whether message i is of the kind that is held.
func mustHold(i int) bool { return i%2 == 0 }

func (s *stream) run() {
	defer close(s.done)
	for i := 0; ; i++ {
		for {
			s.mu.Lock()
			stopped, paused := s.stopped, s.paused
			s.idle = paused
			s.mu.Unlock()
			if stopped {
				return
			}
			if !paused {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		xm, n := ajax, 3
		if mustHold(i) {
			xm, n = zclient, 60
		}
		r := s.in.Send(s.t, postfixtest.SendOptions{From: fmt.Sprintf("%s-%d@campus.example", s.name, i), To: recipients(n, "dest.example"),
			Headers: map[string]string{"X-Mailer": xm, "Subject": s.subject(i)}, Body: "Hello,\nthe minutes are attached.\n"})
		s.mu.Lock()
		s.results = append(s.results, r)
		s.mu.Unlock()
	}
}

func (s *stream) sent() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.results)
}

// pause stops the stream after the message on its way (and waits for
// it), or lets it go on.
func (s *stream) pause(p bool) {
	s.mu.Lock()
	s.paused, s.idle = p, false
	s.mu.Unlock()
	for p {
		s.mu.Lock()
		idle := s.idle
		s.mu.Unlock()
		if idle {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *stream) stop() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	<-s.done
}

// waitStreams waits until every stream not paused has sent n more messages.
func waitStreams(t *testing.T, n int, ss ...*stream) {
	t.Helper()
	want := make([]int, len(ss))
	for i, s := range ss {
		want[i] = s.sent() + n
	}
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; i < len(ss); {
		if ss[i].sent() >= want[i] {
			i++
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream %s sent %d messages, want %d", ss[i].name, ss[i].sent(), want[i])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// metric returns the value of an unlabelled metric on d's /metrics, or -1.
func metric(d *daemon, name string) float64 {
	for l := range strings.Lines(d.httpGet("/metrics")) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// TestClusterOutages is issue 15's scenario (d): two Postfix, two nodes,
// one Redis and one PostgreSQL, and a stream of messages through both
// MTAs. Redis is killed mid-stream, then PostgreSQL (an immediate
// shutdown, as a crash), and node B is killed with SIGKILL while
// PostgreSQL is down, holding records it could not write; the stream goes
// on; then Redis, PostgreSQL and node B come back. Every message is
// delivered, held or refused with a 4xx (none lost, none refused for
// good, none of the held kind delivered), and once both stores are back
// every held message is recorded exactly once in PostgreSQL, naming its
// node, with its whole record — node B's from its spool, not from the
// queue sync (whose grace, a minute, is longer than the test).
func TestClusterOutages(t *testing.T) {
	begin := time.Now()
	shared := newSharedStores(t)
	inA, dA := startPair(t, true, false, postfixtest.Options{}, shared.config("mta-a"))
	inB, dB := startPair(t, true, false, postfixtest.Options{}, shared.config("mta-b"))
	a, b := startStream(t, inA, "mta-a"), startStream(t, inB, "mta-b")
	waitStreams(t, 3, a, b)

	shared.rs.Stop() // SIGKILL
	waitStreams(t, 3, a, b)

	shared.pg.Kill()
	waitStreams(t, 4, a, b) // two of the held kind each
	// Node B is killed once its writer has parked and spooled what it
	// could not write (the counts still for a second, ten times its
	// batch delay): a kill in the instant before is the queue sync's to
	// mend (TestKillNothingLost).
	b.pause(true)
	spoolB := filepath.Join(dB.dataDir, "spool", "holds")
	var last string
	stable := time.Now()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		spooled, unwritten := metric(dB, "mailbrake_holds_spooled"), metric(dB, "mailbrake_holds_unwritten")
		files, _ := filepath.Glob(filepath.Join(spoolB, "*.hold"))
		now := fmt.Sprint(spooled, unwritten, len(files))
		if now != last {
			last, stable = now, time.Now()
		}
		if spooled >= 1 && spooled == unwritten && len(files) == int(spooled) && time.Since(stable) >= time.Second {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node B has not spooled its holds: spooled %v, unwritten %v, files %v", spooled, unwritten, files)
		}
	}
	dB.kill()
	b.pause(false)
	waitStreams(t, 3, a, b) // node B's MTA answers 4xx

	shared.rs.Start()
	shared.pg.Start()
	dB.start()
	waitStreams(t, 3, a, b)
	a.stop()
	b.stop()

	for i, s := range []*stream{a, b} {
		// Postfix delivers what it accepted and is not held.
		s.in.WaitQueue(t, 60*time.Second, func(q []postfixtest.QueueEntry) bool {
			for _, e := range q {
				if e.QueueName != "hold" {
					return false
				}
			}
			return true
		})
		q := s.in.Queue(t)
		var delivered, held, tempfailed int
		for j, o := range outcomes(t, s.in, q, s.results, s.subject) {
			switch {
			case o == outDelivered && mustHold(j):
				t.Errorf("%s message %d, of the held kind, was delivered", s.name, j)
			case o == outHeld && !mustHold(j):
				t.Errorf("%s message %d, of the delivered kind, was held", s.name, j)
			case o == outDelivered:
				delivered++
			case o == outHeld:
				held++
			case o == outTempFailed:
				tempfailed++
			}
		}
		t.Logf("%s: %d sent, %d delivered, %d held, %d temp-failed", s.name, len(s.results), delivered, held, tempfailed)
		if i == 1 && tempfailed == 0 {
			t.Error("no message to node B's MTA was temp-failed: the kill did not happen while messages flowed")
		}
	}

	// Every held message recorded once, with its node and whole record.
	conn, err := pgx.Connect(t.Context(), shared.pg.DSN(shared.db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	type key struct{ node, qid string }
	want := map[key]bool{}
	for _, s := range []*stream{a, b} {
		for _, e := range s.in.Held(t) {
			want[key{s.name, e.QueueID}] = true
		}
	}
	type rec struct {
		n               int
		reasons         []string
		client, subject string
		state           string
	}
	var got map[key]rec
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		rows, err := conn.Query(t.Context(), `SELECT node, queue_id, count(*), max(reasons::text), max(client), max(subject), max(state) FROM holds GROUP BY node, queue_id`)
		if err != nil {
			t.Fatal(err)
		}
		got = map[key]rec{}
		for rows.Next() {
			var k key
			var r rec
			var reasons string
			if err := rows.Scan(&k.node, &k.qid, &r.n, &reasons, &r.client, &r.subject, &r.state); err != nil {
				t.Fatal(err)
			}
			r.reasons = strings.Split(strings.Trim(reasons, "{}"), ",")
			got[k] = r
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		missing := 0
		for k := range want {
			if _, ok := got[k]; !ok {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d held messages have no record", missing, len(want))
		}
	}
	if len(want) < 8 {
		t.Fatalf("only %d messages held", len(want))
	}
	for k, r := range got {
		switch {
		case !want[k]:
			t.Errorf("a record of a message not in %s's hold queue: %s %+v", k.node, k.qid, r)
		case r.n != 1:
			t.Errorf("%s %s recorded %d times", k.node, k.qid, r.n)
		case strings.Join(r.reasons, ",") != "bulk-from-scripted-client" || r.client == "" || !strings.HasPrefix(r.subject, "stream "+k.node+" ") || r.state != "held":
			t.Errorf("%s %s: not its whole record: %+v", k.node, k.qid, r)
		}
	}
	for _, d := range []*daemon{dA, dB} {
		if u, s := metric(d, "mailbrake_holds_unwritten"), metric(d, "mailbrake_holds_spooled"); u != 0 || s != 0 {
			t.Errorf("holds still waiting: unwritten %v, spooled %v", u, s)
		}
	}
	if files, _ := filepath.Glob(filepath.Join(spoolB, "*.hold")); len(files) != 0 {
		t.Errorf("node B's spool still holds %v", files)
	}
	if !strings.Contains(dB.log.String(), "holds spooled before the last stop") || strings.Contains(dB.log.String(), "recorded from the queue") {
		t.Error("node B did not record its holds from its spool")
	}
	// Every hold reported its finding to its account's incident — node
	// B's too, written from its spool by the restarted process (the
	// findings are spooled with the hold).
	if !strings.Contains(dB.log.String(), "recorded from the spool after a restart") {
		t.Error("node B wrote no hold from its spool")
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		var silent int
		if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM holds h WHERE NOT EXISTS
			(SELECT 1 FROM incident_evidence e WHERE e.hold_id = h.id AND e.queue_id = h.queue_id AND e.reason = 'bulk-from-scripted-client')`).Scan(&silent); err != nil {
			t.Fatal(err)
		}
		if silent == 0 {
			break
		}
		if time.Now().After(deadline) {
			var which []string
			rows, _ := conn.Query(t.Context(), `SELECT node || ' ' || queue_id || ' ' || id FROM holds h WHERE NOT EXISTS
				(SELECT 1 FROM incident_evidence e WHERE e.hold_id = h.id AND e.queue_id = h.queue_id AND e.reason = 'bulk-from-scripted-client')`)
			for rows.Next() {
				var w string
				rows.Scan(&w)
				which = append(which, w)
			}
			t.Fatalf("%d holds reported no finding to an incident: %v", silent, which)
		}
	}
	t.Logf("scenario (d) took %s", time.Since(begin).Round(time.Second))
}

// TestClusterJoinCarriesRecords: a node that ran alone and joins a cluster
// brings its own records into PostgreSQL at its first start there — an
// account it restricted stays restricted on every node, its admin can
// sign in on another node — once: a second start carries nothing again.
func TestClusterJoinCarriesRecords(t *testing.T) {
	in := postfixtest.Start(t, postfixtest.Options{})
	dataA := filepath.Join(t.TempDir(), "data")
	alone := startDaemon(t, daemonOptions{PostfixConfigDir: in.ConfigDir, DataDir: dataA})
	alone.mustCLI("account", "restrict", "eve@campus.example", "--reason", "spam run confirmed by the help desk")
	addUser(t, alone, "admin", "admin", "an-Admin-Password-4-A")
	alone.stop()

	shared := newSharedStores(t)
	dA := startDaemon(t, daemonOptions{PostfixConfigDir: in.ConfigDir, DataDir: dataA, ExtraYAML: shared.config("mta-a")})
	dB := startDaemon(t, daemonOptions{PostfixConfigDir: in.ConfigDir, ExtraYAML: shared.config("mta-b")})
	for i, d := range []*daemon{dA, dB} {
		var a api.AccountDetail
		if err := json.Unmarshal([]byte(d.mustCLI("account", "show", "eve@campus.example", "--json")), &a); err != nil {
			t.Fatal(err)
		}
		if a.State != "restricted" {
			t.Fatalf("node %d: eve is %q after node A joined, want restricted", i, a.State)
		}
	}
	webSession(t, dB, "admin", "an-Admin-Password-4-A") // fails the test unless signed in
	if !strings.Contains(dA.log.String(), "own records brought into PostgreSQL") {
		t.Fatalf("node A did not say it brought its records:\n%s", tailLines(dA.log.String(), 30))
	}
	// Deleted in the cluster, the user is not brought back by A's restart.
	dB.mustCLI("user", "remove", "admin")
	dA.stop()
	dA.start()
	if out, err := dB.cli("user", "list"); err != nil || strings.Contains(out, "admin") {
		t.Fatalf("the deleted user came back from node A's own database (%v):\n%q", err, out)
	}
}

// TestClusterStartsWithoutPostgres: a node restarted while PostgreSQL is
// down (a reboot during a database outage) starts and decides mail as a
// running node does during one: the account restricted on the other node
// is held here too (its state comes from Redis), other mail flows, the
// hold is spooled on disk and the admin is told the records are
// read-only. When PostgreSQL is back the node catches up by itself — the
// hold is recorded once, naming the node, on both nodes — with no
// operator.
func TestClusterStartsWithoutPostgres(t *testing.T) {
	shared := newSharedStores(t)
	_, dA := startPair(t, true, false, postfixtest.Options{}, shared.config("mta-a"))
	// defer_transports keeps relayed mail in the deferred queue.
	inB, dB := startPair(t, true, false, postfixtest.Options{ExtraMainCF: map[string]string{"defer_transports": "smtp"}}, shared.config("mta-b"))
	dA.mustCLI("account", "restrict", "eve@campus.example", "--reason", "spam run confirmed by the help desk")
	waitState(t, dB, "eve@campus.example", store.AccountRestricted)

	shared.pg.Kill()
	dB.stop()
	dB.start()
	if !strings.Contains(dB.log.String(), "PostgreSQL does not answer at start") {
		t.Fatalf("node B did not say it started without PostgreSQL:\n%s", tailLines(dB.log.String(), 30))
	}
	degraded := `mailbrake_cluster_degraded{what="records"}`
	if v := metric(dB, degraded); v != 1 {
		t.Fatalf("%s = %v while PostgreSQL is down", degraded, v)
	}
	send := func(from, subject string) postfixtest.SendResult { return sendHello(t, inB, from, subject) }
	held := send("eve@campus.example", "restricted on A, sent through B after B restarted")
	inB.WaitQueue(t, 15*time.Second, func(q []postfixtest.QueueEntry) bool { return inQueue(q, held.QueueID) == "hold" })
	other := send("bob@campus.example", "an ordinary message")
	inB.WaitQueue(t, 15*time.Second, func(q []postfixtest.QueueEntry) bool { return attempted(q, other.QueueID) })
	for deadline := time.Now().Add(15 * time.Second); metric(dB, "mailbrake_holds_spooled") < 1; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("node B has not spooled its hold")
		}
	}
	if out, err := dB.cli("quarantine", "list"); err == nil || !strings.Contains(out+err.Error(), "PostgreSQL does not answer") {
		t.Fatalf("the admin was not told the records are unavailable (%v):\n%s", err, out)
	}

	shared.pg.Start()
	for deadline := time.Now().Add(60 * time.Second); metric(dB, degraded) != 0; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("node B has not caught up with PostgreSQL:\n%s", tailLines(dB.log.String(), 30))
		}
	}
	for _, d := range []*daemon{dB, dA} {
		var found []store.Hold
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			found = found[:0]
			for _, h := range d.holds() {
				if h.QueueID == held.QueueID {
					found = append(found, h)
				}
			}
			if len(found) > 0 || time.Now().After(deadline) {
				break
			}
		}
		if len(found) != 1 || found[0].Node != "mta-b" || strings.Join(found[0].Reasons, ",") != "account-restricted" || found[0].Account != "eve@campus.example" {
			t.Fatalf("holds of %s: %+v", held.QueueID, found)
		}
	}
	if v := metric(dB, "mailbrake_holds_spooled"); v != 0 {
		t.Errorf("mailbrake_holds_spooled = %v after PostgreSQL is back", v)
	}
}

// TestClusterForgedStateIgnored: with cluster.key_file, an account state
// written into the cluster's Redis by someone without the key (here with
// the nodes' own Redis password) restricts nobody: the account's mail is
// delivered, and the node counts the record it ignored.
func TestClusterForgedStateIgnored(t *testing.T) {
	shared := newSharedStores(t)
	in, d := startPair(t, true, false, postfixtest.Options{ExtraMainCF: map[string]string{"defer_transports": "smtp"}}, shared.config("mta-a"))
	c := redis.NewClient(&redis.Options{Addr: shared.rs.Addr, Password: shared.rs.Password})
	defer c.Close()
	forged := fmt.Sprintf(`{"a":{"account":"carol@campus.example","state":"restricted","state_at":%q,"state_by":"web:admin"},"n":"mta-b"}`,
		time.Now().UTC().Format(time.RFC3339Nano))
	if err := c.HSet(t.Context(), "e2e:states", "carol@campus.example", forged).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(t.Context(), "e2e:states", forged).Err(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); metric(d, "mailbrake_cluster_states_rejected_total") < 1; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the forged state was not counted as rejected")
		}
	}
	r := sendHello(t, in, "carol@campus.example", "carol is not restricted")
	in.WaitQueue(t, 15*time.Second, func(q []postfixtest.QueueEntry) bool { return attempted(q, r.QueueID) })
	if a := d.account("carol@campus.example"); a.State != store.AccountNormal {
		t.Fatalf("carol is %s after a forged state", a.State)
	}
}

// TestClusterOnRedisCluster: the nodes share a Redis Cluster of three
// masters (cluster.redis.cluster) instead of one Redis: a run split over
// two MTAs is held at the same total as on one node, the recipient memory
// is shared, an account restricted on one node is held on the other, and
// the keys are spread over the masters.
func TestClusterOnRedisCluster(t *testing.T) {
	rc := redistest.NewCluster(t, 3)
	dir := t.TempDir()
	pw, ckey := filepath.Join(dir, "redis.pw"), filepath.Join(dir, "cluster.key")
	if err := os.WriteFile(pw, []byte(rc.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ckey, []byte(hex.EncodeToString([]byte("a test cluster's secret, 32 byte"))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key := sharedNoveltyKey(t)
	config := func(node string) string {
		return fmt.Sprintf(`cluster:
  node: %s
  key_file: %q
  redis: {address: %q, cluster: true, seeds: [%q], password_file: %q, prefix: "e2e:"}
novelty: {key_file: %q}
`, node, ckey, rc.Nodes[0].Addr, rc.Nodes[1].Addr, pw, key) + splitRunRule
	}
	opts := postfixtest.Options{ExtraMainCF: map[string]string{"defer_transports": "smtp"}}
	inA, dA := startPair(t, true, false, opts, config("mta-a"))
	inB, dB := startPair(t, true, false, opts, config("mta-b"))
	mtas := []*postfixtest.Instance{inA, inB}
	nodes := []*daemon{dA, dB}
	sendSplitRun(t, mtas, nodes)
	for i, d := range nodes {
		if n := len(d.holds()); n != 1 {
			t.Errorf("node %d holds %d messages, want 1", i, n)
		}
		a := d.account("carol@campus.example")
		if a.Counters.Recipients1h != 600 || a.Counters.Messages1h != 12 {
			t.Errorf("node %d shows %+v, want the shared 12 messages, 600 recipients", i, a.Counters)
		}
		if n := a.Novelty; n == nil || n.Known != 600 {
			t.Errorf("node %d's novelty %+v, want the shared 600 known recipients", i, n)
		}
	}

	dB.mustCLI("account", "restrict", "eve@campus.example", "--reason", "spam run seen by the help desk")
	waitState(t, dA, "eve@campus.example", store.AccountRestricted)
	r := sendHello(t, inA, "eve@campus.example", "after restrict on B")
	if h := dA.waitHold(r.QueueID); strings.Join(h.Reasons, ",") != "account-restricted" {
		t.Fatalf("node A held eve's message for %v", h.Reasons)
	}

	masters := 0
	for _, in := range rc.Nodes {
		c := redis.NewClient(&redis.Options{Addr: in.Addr, Password: rc.Password})
		if n, err := c.DBSize(t.Context()).Result(); err == nil && n > 0 {
			masters++
		}
		c.Close()
	}
	if masters < 2 {
		t.Errorf("the keys are on %d of 3 masters", masters)
	}
	for i, d := range nodes {
		if m := d.httpGet("/metrics"); !strings.Contains(m, `mailbrake_cluster_degraded{what="counts"} 0`) || !strings.Contains(m, "mailbrake_cluster_states_rejected_total 0") {
			t.Errorf("node %d: not healthy on the Redis Cluster", i)
		}
	}
}
