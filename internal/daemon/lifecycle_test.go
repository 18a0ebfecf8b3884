package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/policy"
	"github.com/mailbrake/mailbrake/internal/store"
	"github.com/mailbrake/mailbrake/internal/store/sqlite"
	"github.com/mailbrake/mailbrake/internal/verdict"
)

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func quietConfig(t *testing.T) *config.Config {
	t.Helper()
	c := config.Default()
	c.DataDir = filepath.Join(t.TempDir(), "data")
	c.Policy.Listen, c.Milter.Listen, c.HTTP.Listen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	c.Postfix.SyncInterval = 0
	return c
}

// TestStopLosesNothing: verdicts decided up to the moment Stop is called
// are all recorded — holds, and the incidents their findings open, which a
// queue worker records after the reply went out. Stop drains that queue
// after the servers stopped, before the store closes.
func TestStopLosesNothing(t *testing.T) {
	c := quietConfig(t)
	// Steps are recorded, not carried out: this test is about the queue.
	c.Response.DryRun = true
	c.Rules = append(c.Rules, config.Rule{Name: "big", Reason: "rate-recipients-hour", Verdict: verdict.Hold.Ptr(),
		When: []config.Condition{{Fact: "authenticated", Eq: ptr("true")}, {Fact: "recipient_count", Gt: ptrF(5)}}})
	d, err := Build(c, slog.New(slog.NewTextHandler(io.Discard, nil)), "test")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	const conns, perConn = 8, 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	holds := 0
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := policy.Dial("tcp", d.Policy.String())
			if err != nil {
				t.Error(err)
				return
			}
			defer cl.Close()
			for j := range perConn {
				n := i*perConn + j
				r := policy.Request{Request: policy.RequestType, ProtocolState: policy.StateEndOfMessage, SASLUsername: fmt.Sprintf("u%03d@example.org", n),
					ClientAddress: "192.0.2.1", RecipientCount: 10, QueueID: fmt.Sprintf("Q%05X", n), Instance: fmt.Sprint(n)}
				resp, err := cl.Check(ctx, &r)
				if err != nil {
					t.Error(err)
					return
				}
				if strings.HasPrefix(resp.Action, "HOLD") {
					mu.Lock()
					holds++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	// Stop at once: the incident worker is still behind.
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := d.Stop(sctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if holds != conns*perConn {
		t.Fatalf("%d holds answered, want %d", holds, conns*perConn)
	}
	st, err := sqlite.Open(ctx, filepath.Join(c.DataDir, "mailbrake.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	incs, err := st.ListIncidents(ctx, store.IncidentFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	hs, err := st.ListHolds(ctx, store.HoldFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(incs) != holds || len(hs) != holds {
		t.Fatalf("after Stop: %d incidents and %d hold records for %d holds answered", len(incs), len(hs), holds)
	}
}

// TestFailedStartUnwinds: when a listener cannot be opened after others
// started, Start stops those and closes the store: nothing keeps running
// and nothing holds the store.
func TestFailedStartUnwinds(t *testing.T) {
	c := quietConfig(t)
	c.Policy.Listen = freePort(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	c.Milter.Listen = busy.Addr().String()
	d, err := Build(c, slog.New(slog.NewTextHandler(io.Discard, nil)), "test")
	if err != nil {
		t.Fatal(err)
	}
	err = d.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "milter listener") {
		t.Fatalf("Start: %v, want a milter listener error", err)
	}
	// The policy server that had started is gone: its port is free.
	ln, err := net.Listen("tcp", c.Policy.Listen)
	if err != nil {
		t.Fatalf("the policy server still listens after a failed start: %v", err)
	}
	ln.Close()
	select {
	case <-d.Ready:
		t.Fatal("Ready closed after a failed start")
	default:
	}
	// The store was closed: a new daemon starts on the same data.
	c.Milter.Listen = "127.0.0.1:0"
	d2, err := Build(c, slog.New(slog.NewTextHandler(io.Discard, nil)), "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := d2.Start(context.Background()); err != nil {
		t.Fatalf("starting again: %v", err)
	}
	if err := d2.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// slowAccounts is an account store that takes its time to write (a busy
// PostgreSQL), as long as its context lets it.
type slowAccounts struct {
	store.Accounts
	delay time.Duration
}

func (s slowAccounts) PutAccount(ctx context.Context, a store.Account) error {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.Accounts.PutAccount(ctx, a)
}

// TestStopDeadlineKeepsEscalations: an idle SMTP session holds its milter
// connection open through the stop and uses up the stop's deadline; an
// account restriction still being written then is recorded all the same
// (essential work has time of its own), not cancelled with the deadline.
func TestStopDeadlineKeepsEscalations(t *testing.T) {
	c := quietConfig(t)
	d, err := Build(c, slog.New(slog.NewTextHandler(io.Discard, nil)), "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	idle, err := net.Dial("tcp", d.Milter.String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	d.ops.Accounts = slowAccounts{Accounts: d.ops.Accounts, delay: 700 * time.Millisecond}
	d.queueEscalation("mallory@example.org", store.AccountRestricted, "score 130 over 100")
	sctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = d.Stop(sctx)
	if err == nil || !strings.Contains(err.Error(), "milter") {
		t.Fatalf("Stop: %v, want the milter drain cut short", err)
	}
	if strings.Contains(err.Error(), "account state") {
		t.Fatalf("the account state queue was cut short: %v", err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(c.DataDir, "mailbrake.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, err := st.GetAccount(context.Background(), "mallory@example.org")
	if err != nil || a.State != store.AccountRestricted {
		t.Fatalf("after the stop: %+v %v", a, err)
	}
}

// TestAdminSocketGroup: with admin.group, a socket directory mailbrake
// creates is 0750 with the group and the socket 0660; an existing
// directory the group cannot enter is refused with words saying so.
func TestAdminSocketGroup(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "run", "admin.sock")
	ln, err := listenAdmin(path, "root")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	for p, want := range map[string]os.FileMode{filepath.Dir(path): 0o750 | os.ModeDir} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode() != want || fi.Sys().(*syscall.Stat_t).Gid != 0 {
			t.Fatalf("%s: %v %v", p, fi.Mode(), err)
		}
	}
	closed := filepath.Join(dir, "closed")
	if err := os.Mkdir(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(closed, 0, 12345); err != nil {
		t.Fatal(err)
	}
	if _, err := listenAdmin(filepath.Join(closed, "admin.sock"), "root"); err == nil || !strings.Contains(err.Error(), "cannot enter") {
		t.Fatalf("a directory the group cannot enter: %v", err)
	}
}
