package daemon

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/mailbrake/mailbrake/internal/store"
	"github.com/mailbrake/mailbrake/internal/store/sqlite"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/policy"
	"github.com/mailbrake/mailbrake/internal/verdict"
	_ "modernc.org/sqlite"
)

// startInProcess runs a daemon on loopback port 0 with the default rules.
func startInProcess(t *testing.T, mutate func(*config.Config)) *Daemon {
	t.Helper()
	c := config.Default()
	c.DataDir = filepath.Join(t.TempDir(), "data")
	c.Policy.Listen, c.Milter.Listen, c.HTTP.Listen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	c.Postfix.SyncInterval = 0
	// An empty Postfix queue, whatever Postfix this machine has: the
	// queue sync (and readiness) must not depend on /etc/postfix.
	bin := t.TempDir()
	for _, name := range []string{"postqueue", "postsuper", "postconf", "postcat"} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	c.Postfix.Postqueue, c.Postfix.Postsuper = filepath.Join(bin, "postqueue"), filepath.Join(bin, "postsuper")
	if mutate != nil {
		mutate(c)
	}
	d := New(c, slog.New(slog.NewTextHandler(io.Discard, nil)), "test")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	select {
	case <-d.Ready:
	case err := <-done:
		t.Fatalf("daemon exited: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("daemon not ready")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return d
}

func TestPolicyPathHoldsAtEndOfMessage(t *testing.T) {
	d := startInProcess(t, func(c *config.Config) {
		c.Rules = append(c.Rules, config.Rule{Name: "bulk-authenticated", Verdict: verdict.Hold.Ptr(), When: []config.Condition{
			{Fact: "authenticated", Eq: ptr("true")}, {Fact: "recipient_count", Gt: ptrF(50)},
		}})
	})
	cl, err := policy.Dial("tcp", d.Policy.String())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	base := policy.Request{Request: policy.RequestType, ProtocolName: "ESMTP", ClientAddress: "192.0.2.10", SASLMethod: "PLAIN",
		SASLUsername: "Eve@Example.org", Sender: "eve@example.org", Instance: "abc.123", QueueID: "4F2A1B3C"}
	for i := 0; i < 60; i++ {
		r := base
		r.ProtocolState, r.Recipient = policy.StateRcpt, "r"+string(rune('a'+i%26))+"@dest.example"
		resp, err := cl.Check(ctx, &r)
		if err != nil || resp.Action != "DUNNO" {
			t.Fatalf("RCPT %d: %q %v", i, resp.Action, err)
		}
	}
	// Other states are answered DUNNO.
	r := base
	r.ProtocolState = policy.StateMail
	if resp, err := cl.Check(ctx, &r); err != nil || resp.Action != "DUNNO" {
		t.Fatalf("MAIL: %q %v", resp.Action, err)
	}
	// DATA (smtpd_data_restrictions: on Zimbra the one restriction list
	// zmconfigd copies from an attribute, zimbraMtaSmtpdDataRestrictions)
	// knows recipient_count and decides for the whole message, as
	// END-OF-MESSAGE does; both may come for one message.
	r.ProtocolState, r.RecipientCount = policy.StateData, 60
	if resp, err := cl.Check(ctx, &r); err != nil || !strings.HasPrefix(resp.Action, "HOLD ") {
		t.Fatalf("DATA: %q %v", resp.Action, err)
	}
	r.ProtocolState, r.RecipientCount = policy.StateEndOfMessage, 60
	resp, err := cl.Check(ctx, &r)
	if err != nil || !strings.HasPrefix(resp.Action, "HOLD ") || !strings.Contains(resp.Action, "bulk-authenticated") {
		t.Fatalf("END-OF-MESSAGE: %q %v", resp.Action, err)
	}
	c := api.NewClient(d.Socket)
	// The hold is recorded off the request path, within milliseconds.
	var list *api.HoldList
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		list, err = c.ListHolds(ctx, api.ListHoldsRequest{})
		if err == nil && len(list.Holds) == 1 || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || len(list.Holds) != 1 {
		t.Fatalf("holds: %+v %v", list, err)
	}
	h := list.Holds[0]
	if h.Account != "eve@example.org" || h.QueueID != "4F2A1B3C" || h.RecipientCount != 60 || len(h.Recipients) != 60 || h.Path != "policy" {
		t.Fatalf("hold: %+v", h)
	}
	// Metrics use fixed labels only: never the account. The hold is
	// counted once its record is written, which the writer reports just
	// after the record shows in the list: read until it is there.
	wants := []string{`mailbrake_policy_requests_total{action="HOLD",state="END-OF-MESSAGE"} 1`, `mailbrake_holds_total{path="policy"} 1`,
		// a verdict per decision (DATA and END-OF-MESSAGE), a hold per message
		`mailbrake_verdicts_total{action="hold",path="policy",reason="bulk-authenticated"} 2`,
		// What an on-call admin alerts on (issue 14).
		"mailbrake_held_messages 1", `mailbrake_accounts{state="locked"} 0`, "mailbrake_queue_sync_ok 1",
		// At 0 before any re-injection (docs/zimbra.md: "stays at 0").
		`mailbrake_reinjected_total{path="milter"} 0`}
	var m string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		res, err := http.Get("http://" + d.HTTP.String() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		m = string(body)
		if !slices.ContainsFunc(wants, func(w string) bool { return !strings.Contains(m, w) }) || time.Now().After(deadline) {
			break
		}
	}
	for _, want := range wants {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(m, "eve@example.org") {
		t.Error("an account appears in the metrics")
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		res, err := http.Get("http://" + d.HTTP.String() + p)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("%s: %v %v", p, res, err)
		}
		res.Body.Close()
	}
}

func ptr(s string) *string    { return &s }
func ptrF(f float64) *float64 { return &f }

// TestUnixSockets: policy and milter can listen on unix sockets, which
// Postfix (user postfix) must be able to reach.
func TestUnixSockets(t *testing.T) {
	dir := t.TempDir()
	d := startInProcess(t, func(c *config.Config) {
		c.Policy.Listen = "unix:" + filepath.Join(dir, "policy.sock")
		c.Milter.Listen = "unix:" + filepath.Join(dir, "milter.sock")
	})
	cl, err := policy.Dial("unix", filepath.Join(dir, "policy.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	resp, err := cl.Check(context.Background(), &policy.Request{Request: policy.RequestType, ProtocolState: policy.StateRcpt, Recipient: "a@b.example", SASLUsername: "u@x.example", ClientAddress: "192.0.2.1"})
	if err != nil || resp.Action != "DUNNO" {
		t.Fatalf("%q %v", resp.Action, err)
	}
	if d.Milter.Network() != "unix" {
		t.Fatalf("milter on %s", d.Milter.Network())
	}
	for _, s := range []string{"policy.sock", "milter.sock"} {
		fi, err := os.Stat(filepath.Join(dir, s))
		if err != nil || fi.Mode().Perm() != 0o666 {
			t.Fatalf("%s: %v %v", s, fi.Mode(), err)
		}
	}
	fi, err := os.Stat(d.Socket)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin socket mode: %v %v", fi.Mode(), err)
	}
}

// TestStateSurvivesRestart: counters and the learned baseline are restored
// from the snapshots taken at shutdown.
func TestStateSurvivesRestart(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	run := func(send bool) (int64, any) {
		c := config.Default()
		c.DataDir = dataDir
		c.Policy.Listen, c.Milter.Listen, c.HTTP.Listen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		c.Postfix.SyncInterval = 0
		d := New(c, slog.New(slog.NewTextHandler(io.Discard, nil)), "test")
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx) }()
		<-d.Ready
		if send {
			cl, err := policy.Dial("tcp", d.Policy.String())
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 3; i++ {
				r := policy.Request{Request: policy.RequestType, ProtocolState: policy.StateEndOfMessage, SASLUsername: "keep@example.org",
					ClientAddress: "192.0.2.1", RecipientCount: 4, QueueID: fmt.Sprintf("ABCDEF%d", i), Instance: fmt.Sprint(i)}
				if _, err := cl.Check(ctx, &r); err != nil {
					t.Fatal(err)
				}
			}
			cl.Close()
		}
		<-d.Restored()
		tot, _ := d.counters.Peek(ctx, "keep@example.org", time.Now())
		b, _ := d.ops.Baseline("keep@example.org", time.Now())
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		return tot.Recipients1h, b
	}
	before, b1 := run(true)
	after, b2 := run(false)
	if before != 12 || after != 12 {
		t.Fatalf("recipients_1h before %d, after restart %d", before, after)
	}
	if fmt.Sprint(b1) != fmt.Sprint(b2) || b2 == nil {
		t.Fatalf("baseline before %v, after %v", b1, b2)
	}
}

// TestListenersOpenBeforeRestore: the stored detector state is read in the
// background (issue 13: with a million accounts every listener stayed
// closed for 18 s). With the restore held back, the daemon is ready and
// decides; mail sent meanwhile is merged with what is restored, and the
// next stop saves the sum.
func TestListenersOpenBeforeRestore(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	newDaemon := func() *Daemon {
		c := config.Default()
		c.DataDir = dataDir
		c.Policy.Listen, c.Milter.Listen, c.HTTP.Listen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		c.Postfix.SyncInterval = 0
		return New(c, slog.New(slog.NewTextHandler(io.Discard, nil)), "test")
	}
	send := func(ctx context.Context, d *Daemon, first, n int) {
		cl, err := policy.Dial("tcp", d.Policy.String())
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		for i := first; i < first+n; i++ {
			r := policy.Request{Request: policy.RequestType, ProtocolState: policy.StateEndOfMessage, SASLUsername: "keep@example.org",
				ClientAddress: "192.0.2.1", RecipientCount: 4, QueueID: fmt.Sprintf("ABCDEF%d", i), Instance: fmt.Sprint(i)}
			if _, err := cl.Check(ctx, &r); err != nil {
				t.Fatal(err)
			}
		}
	}
	run := func(d *Daemon, body func(ctx context.Context)) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx) }()
		<-d.Ready
		body(ctx)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	d := newDaemon()
	run(d, func(ctx context.Context) { <-d.Restored(); send(ctx, d, 0, 3) })

	d = newDaemon()
	release := make(chan struct{})
	d.restoreHook = func() { <-release }
	run(d, func(ctx context.Context) {
		// Ready and deciding while nothing is restored yet.
		send(ctx, d, 10, 2)
		select {
		case <-d.Restored():
			t.Fatal("restore ended while held back")
		default:
		}
		if tot, _ := d.counters.Peek(ctx, "keep@example.org", time.Now()); tot.Recipients1h != 8 {
			t.Fatalf("before the restore recipients_1h = %d, want the 8 sent since start", tot.Recipients1h)
		}
		close(release)
		<-d.Restored()
		if tot, _ := d.counters.Peek(ctx, "keep@example.org", time.Now()); tot.Recipients1h != 20 {
			t.Fatalf("after the restore recipients_1h = %d, want 12 restored + 8 since start", tot.Recipients1h)
		}
	})

	// The merged state was saved at the stop: the next start has it all.
	d = newDaemon()
	run(d, func(ctx context.Context) {
		<-d.Restored()
		if tot, _ := d.counters.Peek(ctx, "keep@example.org", time.Now()); tot.Recipients1h != 20 || tot.Messages1h != 5 {
			t.Fatalf("after a second restart %+v, want 5 messages, 20 recipients", tot)
		}
	})
}

// TestReadyzReflectsWrites: /readyz is 503 with the reason while the store
// takes no writes (another process holds its lock), and 200 again after
// (issue 13: it said 200 while every write failed).
func TestReadyzReflectsWrites(t *testing.T) {
	var dataDir string
	d := startInProcess(t, func(c *config.Config) { dataDir = c.DataDir })
	get := func() (int, string) {
		res, err := http.Get("http://" + d.HTTP.String() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := get(); code != 200 {
		t.Fatalf("ready before: %d %s", code, body)
	}
	unlock := lockStore(t, dataDir)
	code, body := get()
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "store does not take writes") {
		t.Errorf("while locked: %d %s", code, body)
	}
	unlock()
	if code, body := get(); code != 200 {
		t.Errorf("after: %d %s", code, body)
	}
}

// lockStore takes the SQLite database's write lock from another
// connection, as another process would, until the returned function
// (also run at the end of the test) gives it back.
func lockStore(t *testing.T, dataDir string) func() {
	t.Helper()
	other, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, "mailbrake.db")+"?_pragma=busy_timeout(100)")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := other.Conn(context.Background())
	if err != nil {
		other.Close()
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN EXCLUSIVE"); err != nil {
		conn.Close()
		other.Close()
		t.Fatal(err)
	}
	var once sync.Once
	unlock := func() {
		once.Do(func() {
			conn.ExecContext(context.Background(), "ROLLBACK")
			conn.Close()
			other.Close()
		})
	}
	t.Cleanup(unlock)
	return unlock
}

// TestMissingPostfixToolInReadyz: a Postfix tool that cannot be run is
// named in /readyz (issue 13: postconf was looked up beside postsuper and
// a missing tool was found out only when used).
func TestMissingPostfixToolInReadyz(t *testing.T) {
	d := startInProcess(t, func(c *config.Config) { c.Postfix.Postcat = "/nonexistent/postcat" })
	res, err := http.Get("http://" + d.HTTP.String() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "postfix.postcat") {
		t.Errorf("readyz: %d %s", res.StatusCode, b)
	}
}

// TestConnectorHealthInReadyz: /readyz and mailbrake_connector_up say when
// a connector's system does not answer (issue 13: readiness ignored the
// connectors, so a playbook found out during an incident), with the
// connector and since when, and recover when it answers again.
func TestConnectorHealthInReadyz(t *testing.T) {
	pf := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(pf, []byte("alice@example.org:{PLAIN}x::::::\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startInProcess(t, func(c *config.Config) {
		c.Directory.PasswdFile.Path = pf
		c.Response.UsePasswdFile = true
	})
	get := func(path string) (int, string) {
		t.Helper()
		res, err := http.Get("http://" + d.HTTP.String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	probe := func() { d.connHealth.probeAll(context.Background(), d.response.conns) }

	probe()
	if code, body := get("/readyz"); code != http.StatusOK {
		t.Fatalf("readyz with the passwd-file in place: %d %s", code, body)
	}
	if _, m := get("/metrics"); !strings.Contains(m, `mailbrake_connector_up{connector="passwd_file"} 1`) {
		t.Fatalf("metrics lack the connector gauge:\n%s", grepLines(m, "connector_up"))
	}

	if err := os.Rename(pf, pf+".moved"); err != nil {
		t.Fatal(err)
	}
	probe()
	probe()
	code, body := get("/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "connector passwd_file failing since") || !strings.Contains(body, "no such file") {
		t.Fatalf("readyz with the passwd-file gone: %d %s", code, body)
	}
	if _, m := get("/metrics"); !strings.Contains(m, `mailbrake_connector_up{connector="passwd_file"} 0`) {
		t.Fatalf("connector gauge not 0:\n%s", grepLines(m, "connector_up"))
	}

	if err := os.Rename(pf+".moved", pf); err != nil {
		t.Fatal(err)
	}
	probe()
	if code, body := get("/readyz"); code != http.StatusOK {
		t.Fatalf("readyz after the passwd-file is back: %d %s", code, body)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestReload (issue 14): a reload applies new rules while the counters
// keep what they counted, refuses a configuration with errors and keeps
// the running one, and names the changed keys that need a restart.
func TestReload(t *testing.T) {
	d := startInProcess(t, nil)
	ctx := context.Background()
	cl, err := policy.Dial("tcp", d.Policy.String())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rcpt := func(instance string) string {
		t.Helper()
		r := policy.Request{Request: policy.RequestType, ProtocolState: policy.StateRcpt, SASLUsername: "ann@example.org",
			ClientAddress: "192.0.2.1", ClientPort: "40000", Instance: instance, Sender: "ann@example.org", Recipient: "x@example.net"}
		resp, err := cl.Check(ctx, &r)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Action
	}
	eom := policy.Request{Request: policy.RequestType, ProtocolState: policy.StateEndOfMessage, SASLUsername: "ann@example.org",
		ClientAddress: "192.0.2.1", ClientPort: "40000", RecipientCount: 1, QueueID: "RELOAD1", Instance: "r1", Sender: "ann@example.org"}
	if a := rcpt("r1"); a != "DUNNO" {
		t.Fatalf("before the reload: %s", a)
	}
	if _, err := cl.Check(ctx, &eom); err != nil {
		t.Fatal(err)
	}

	next := *d.cfg
	one := 1.0
	deferVerdict := verdict.Defer
	next.Rules = append(append([]config.Rule(nil), d.cfg.Rules...), config.Rule{Name: "one-an-hour", Reason: "one-an-hour", Stage: config.StageRcpt,
		When: []config.Condition{{Fact: "messages_1h", Gte: &one}}, Verdict: &deferVerdict})
	r, err := d.Reload(&next)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(r.Applied, "rules") || len(r.Restart) != 0 {
		t.Fatalf("reloaded: %+v", r)
	}
	// The message before the reload still counts: the new rule defers.
	if a := rcpt("r2"); a != "DEFER" && !strings.HasPrefix(a, "DEFER") && !strings.HasPrefix(a, "4") {
		t.Fatalf("after the reload: %q, want a deferral", a)
	}

	broken := next
	broken.Playbooks = append([]config.PlaybookConfig(nil), next.Playbooks...)
	broken.Playbooks[0].Triggers = []string{"reply-to-phiser"}
	if _, err := d.Reload(&broken); err == nil || !strings.Contains(err.Error(), "reply-to-phiser") {
		t.Fatalf("a broken configuration: %v", err)
	}
	if a := rcpt("r3"); !strings.HasPrefix(a, "DEFER") && !strings.HasPrefix(a, "4") {
		t.Fatalf("after a refused reload the running rules changed: %q", a)
	}

	// What reads a reloaded key reads the reloaded value: the answer to a
	// request not decided in time (engine.on_error) and the account's
	// score window and thresholds.
	failClosed := next
	failClosed.Engine.OnError = verdict.Defer
	failClosed.Accounts.ScoreWindow, failClosed.Accounts.WatchScore = config.Duration(time.Hour), 7
	if r, err := d.Reload(&failClosed); err != nil || !slices.Contains(r.Applied, "engine.on_error") || !slices.Contains(r.Applied, "accounts") {
		t.Fatalf("reloading engine.on_error and accounts: %+v %v", r, err)
	}
	late := policy.Request{Request: policy.RequestType, ProtocolState: policy.StateRcpt, SASLUsername: "ann@example.org",
		ClientAddress: "192.0.2.1", ClientPort: "40000", Instance: "r4", Sender: "ann@example.org", Recipient: "x@example.net"}
	if a := d.policyServer().OnTimeout(&late).Action; !strings.HasPrefix(a, "DEFER") {
		t.Fatalf("a decision timeout after on_error became defer answers %q", a)
	}
	if sc, ok := d.ops.Score(ctx, "ann@example.org", time.Now()); !ok || sc.Window != "1h" || sc.WatchScore != 7 {
		t.Fatalf("account score after the reload: %+v", sc)
	}

	moved := failClosed
	moved.Policy.Listen = "127.0.0.1:1"
	if r, err := d.Reload(&moved); err != nil || !slices.Contains(r.Restart, "policy") {
		t.Fatalf("a changed listener: %+v %v", r, err)
	}
	// The config view (API, web UI) shows what is in force: the reloaded
	// rule and on_error, the listener that still runs, and which changed
	// keys wait for a restart.
	view := d.ops.ConfigText()
	if !strings.Contains(view, "one-an-hour") || !strings.Contains(view, "on_error: defer") || strings.Contains(view, "127.0.0.1:1\n") ||
		!strings.Contains(view, d.cfg.Policy.Listen) || !strings.Contains(view, "waiting for the next start: policy") {
		t.Fatalf("config view after reloads:\n%s", view)
	}
}

// TestRetentionPrunesAtStart (issue 14): the daemon prunes what
// retention.* lets go, at start and hourly; a message still held stays.
// Expired web sessions go too; a live one stays.
func TestRetentionPrunesAtStart(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	st, err := sqlite.Open(t.Context(), filepath.Join(data, "mailbrake.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().AddDate(-2, 0, 0)
	gone, err := st.PutHold(t.Context(), &store.Hold{QueueID: "GONE1", Preview: "x", HeldAt: old, State: store.HoldHeld, StateAt: old})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetHoldState(t.Context(), gone.ID, store.HoldHeld, store.HoldReleased, "test", old); err != nil {
		t.Fatal(err)
	}
	held, err := st.PutHold(t.Context(), &store.Hold{QueueID: "HELD1", Preview: "y", HeldAt: old, State: store.HoldHeld, StateAt: old})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	expired := store.Session{Hash: bytes.Repeat([]byte{1}, 32), User: "alice", Role: "admin", UserUpdated: old, Created: now.Add(-3 * time.Hour), Seen: now.Add(-2 * time.Hour)}
	live := store.Session{Hash: bytes.Repeat([]byte{2}, 32), User: "alice", Role: "admin", UserUpdated: old, Created: now.Add(-3 * time.Hour), Seen: now.Add(-time.Minute)}
	for _, se := range []store.Session{expired, live} {
		if err := st.PutSession(t.Context(), se); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	d := startInProcess(t, func(c *config.Config) { c.DataDir = data })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := d.store.GetHold(t.Context(), gone.ID); errors.Is(err, store.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a hold released two years ago was not pruned")
		}
	}
	if h, err := d.store.GetHold(t.Context(), held.ID); err != nil || h.Preview != "y" {
		t.Fatalf("a message still held was pruned: %+v %v", h, err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := d.store.GetSession(t.Context(), expired.Hash); errors.Is(err, store.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a web session idle for two hours was not pruned")
		}
	}
	if _, err := d.store.GetSession(t.Context(), live.Hash); err != nil {
		t.Fatalf("a live web session was pruned: %v", err)
	}
}
