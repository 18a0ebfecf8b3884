package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailbrake/mailbrake/internal/pgtest"
	"github.com/mailbrake/mailbrake/internal/store"
	"github.com/mailbrake/mailbrake/internal/store/storetest"
)

// openDB opens a Store on database db of srv, closed when the test ends.
func openDB(t *testing.T, srv *pgtest.Instance, db string) *Store {
	t.Helper()
	s, err := Open(t.Context(), Options{ConnString: srv.ConnString(db), Password: srv.Password, MaxConns: 8})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestConformance runs the store suite, each subtest on a database of its
// own on one server.
func TestConformance(t *testing.T) {
	srv := pgtest.New(t)
	storetest.Run(t, func(t *testing.T) storetest.Backend {
		return openDB(t, srv, srv.NewDB(t))
	})
}

func TestMigrations(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || SchemaVersion() != len(ms) {
		t.Fatalf("%d migrations, SchemaVersion %d", len(ms), SchemaVersion())
	}
}

// schemaVersions returns the rows of schema_migrations.
func schemaVersions(t *testing.T, s *Store) []int {
	t.Helper()
	rows, err := s.pool.Query(t.Context(), `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

// TestMigrateConcurrent: nodes starting together on an empty database all
// open it; the schema is applied once.
func TestMigrateConcurrent(t *testing.T) {
	srv := pgtest.New(t)
	db := srv.NewDB(t)
	const nodes = 4
	stores := make([]*Store, nodes)
	errs := make([]error, nodes)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = Open(t.Context(), Options{ConnString: srv.ConnString(db), Password: srv.Password})
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: Open: %v", i, err)
		}
		defer stores[i].Close()
	}
	want := make([]int, SchemaVersion())
	for i := range want {
		want[i] = i + 1
	}
	if got := schemaVersions(t, stores[0]); !slices.Equal(got, want) {
		t.Errorf("schema_migrations = %v, want %v", got, want)
	}
	// Every node works on the one schema.
	for i, s := range stores {
		if _, err := s.PutHold(t.Context(), &store.Hold{QueueID: fmt.Sprintf("4N%d", i), HeldAt: time.Now()}); err != nil {
			t.Errorf("node %d: PutHold: %v", i, err)
		}
	}
	// Opening again migrates nothing and changes nothing.
	s := openDB(t, srv, db)
	if got := schemaVersions(t, s); !slices.Equal(got, want) {
		t.Errorf("after reopening: schema_migrations = %v, want %v", got, want)
	}
	if n, err := s.CountHolds(t.Context(), store.HoldFilter{}); err != nil || n.N != nodes {
		t.Errorf("CountHolds = %+v, %v; want %d", n, err, nodes)
	}
}

// TestRefusesNewerSchema: a database migrated by a newer mailbrake is
// refused and left as it is.
func TestRefusesNewerSchema(t *testing.T) {
	srv := pgtest.New(t)
	db := srv.NewDB(t)
	s := openDB(t, srv, db)
	s.Close()
	srv.Exec(t, db, `INSERT INTO schema_migrations (version) VALUES (99)`)
	_, err := Open(t.Context(), Options{ConnString: srv.ConnString(db), Password: srv.Password})
	want := fmt.Sprintf("schema version 99 is newer than this mailbrake knows (%d)", SchemaVersion())
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Open of a newer schema = %v, want an error saying %q", err, want)
	}
	// An empty database with a partial, failing migration is left
	// untouched: nothing of it is applied.
	db2 := srv.NewDB(t)
	srv.Exec(t, db2, `CREATE TABLE holds (x int)`) // migration 1 then fails
	if _, err := Open(t.Context(), Options{ConnString: srv.ConnString(db2), Password: srv.Password}); err == nil {
		t.Fatal("Open succeeded over a conflicting table")
	}
	c, err := pgx.Connect(t.Context(), srv.DSN(db2))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var n int
	if err := c.QueryRow(t.Context(), `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&n); err != nil || n != 1 {
		t.Errorf("after a failed migration: %d tables, %v; want only the one there before", n, err)
	}
}

// TestPasswordNotInErrors: a wrong password fails Open without the
// password in the error text.
func TestPasswordNotInErrors(t *testing.T) {
	srv := pgtest.New(t)
	db := srv.NewDB(t)
	const secret = "Wr0ng-S3cret-pa55word"
	for _, o := range []Options{
		{ConnString: srv.ConnString(db), Password: secret},
		{ConnString: strings.Replace(srv.ConnString(db), "postgres@", "postgres:"+secret+"@", 1)},
		{ConnString: "host=127.0.0.1 port=notaport password=" + secret},
	} {
		s, err := Open(t.Context(), o)
		if err == nil {
			s.Close()
			t.Fatalf("Open with a wrong password succeeded")
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error shows the password: %v", err)
		}
	}
}

// TestTwoNodesMergeOneHold: two Stores on one database (two pools, as the
// policy and milter paths of a node write through their own transactions)
// holding the same node's queue ID at once end with one record holding
// every reason.
func TestTwoNodesMergeOneHold(t *testing.T) {
	srv := pgtest.New(t)
	db := srv.NewDB(t)
	nodes := []*Store{openDB(t, srv, db), openDB(t, srv, db)}
	const rounds, perNode = 20, 4
	for r := range rounds {
		qid := fmt.Sprintf("4TWO%02d", r)
		var wg sync.WaitGroup
		errs := make(chan error, len(nodes)*perNode)
		start := make(chan struct{})
		for n, s := range nodes {
			for w := range perNode {
				wg.Go(func() {
					h := &store.Hold{QueueID: qid, Node: "mx1", Reasons: []string{fmt.Sprintf("r-%d-%d", n, w)}, HeldAt: time.Now()}
					<-start
					if _, err := s.PutHold(t.Context(), h); err != nil {
						errs <- err
					}
				})
			}
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: PutHold: %v", r, err)
		}
		hs, err := nodes[1].ListHolds(t.Context(), store.HoldFilter{Query: "", Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		var got []store.Hold
		for _, h := range hs {
			if h.QueueID == qid {
				got = append(got, h)
			}
		}
		if len(got) != 1 {
			t.Fatalf("round %d: %d records for one queue id", r, len(got))
		}
		reasons := slices.Clone(got[0].Reasons)
		sort.Strings(reasons)
		if len(reasons) != len(nodes)*perNode {
			t.Errorf("round %d: reasons %q, want all %d", r, reasons, len(nodes)*perNode)
		}
		if got[0].Node != "mx1" {
			t.Errorf("round %d: node %q", r, got[0].Node)
		}
	}
}

// TestTwoNodesOneIncident: findings against one account from two nodes
// at once join one incident, every piece of evidence kept in sequence.
func TestTwoNodesOneIncident(t *testing.T) {
	srv := pgtest.New(t)
	db := srv.NewDB(t)
	nodes := []*Store{openDB(t, srv, db), openDB(t, srv, db)}
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Go(func() {
			acct := []string{"a@example.org", "b@example.org"}[i%2]
			_, _, err := nodes[(i/2)%2].OpenIncident(t.Context(), acct, store.SeverityMedium, "", store.Evidence{Reason: "r", QueueID: fmt.Sprintf("Q%d", i)})
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, acct := range []string{"a@example.org", "b@example.org"} {
		in, err := nodes[0].ActiveIncident(t.Context(), acct)
		if err != nil {
			t.Fatalf("%s: %v", acct, err)
		}
		if len(in.Evidence) != 16 {
			t.Errorf("%s: %d evidence, want 16", acct, len(in.Evidence))
		}
	}
	if ins, err := nodes[1].ListIncidents(t.Context(), store.IncidentFilter{}); err != nil || len(ins) != 2 {
		t.Errorf("ListIncidents: %d, %v; want 2", len(ins), err)
	}
}

// TestOutage: a Store survives its server's restart; calls during the
// outage fail, calls after it work.
func TestOutage(t *testing.T) {
	srv := pgtest.New(t)
	s := openDB(t, srv, srv.NewDB(t))
	ctx := t.Context()
	if err := s.WriteProbe(ctx); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.Ping(cctx); err == nil {
		t.Fatal("Ping succeeded with the server stopped")
	}
	srv.Start()
	// The pool drops its dead connections as it meets them.
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err = s.WriteProbe(ctx); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	if n, oldest, err := s.HeldStats(ctx); err != nil || n != 0 || !oldest.IsZero() {
		t.Errorf("HeldStats = %d, %v, %v", n, oldest, err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping after the restart: %v", err)
	}
}

// TestTextPostgresRefuses: a NUL byte or invalid UTF-8 in what mail
// brings does not cost the record; the bytes become U+FFFD.
func TestTextPostgresRefuses(t *testing.T) {
	srv := pgtest.New(t)
	s := openDB(t, srv, srv.NewDB(t))
	ctx := t.Context()
	h, err := s.PutHold(ctx, &store.Hold{QueueID: "4TXT", Subject: "a\x00b\xffc", Recipients: []string{"x\x00@example.org"},
		Reasons: []string{"r\xff", "r\xfe"}, HeldAt: time.Now()})
	if err != nil {
		t.Fatalf("PutHold: %v", err)
	}
	got, err := s.HoldByQueueID(ctx, "4TXT")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != h.ID || got.Subject != "a\uFFFDb\uFFFDc" || got.Recipients[0] != "x\uFFFD@example.org" || !slices.Equal(got.Reasons, []string{"r\uFFFD"}) {
		t.Errorf("stored %+v", got)
	}
	if err := s.AppendAudit(ctx, store.AuditEntry{Time: time.Now(), Actor: "system", Action: "a", Target: "t", Detail: "d\x00"}); err != nil {
		t.Errorf("AppendAudit: %v", err)
	}
	if _, _, err := s.OpenIncident(ctx, "u@example.org", store.SeverityLow, "", store.Evidence{Reason: "r", Detail: "\xff", QueueID: "Q\x00"}); err != nil {
		t.Errorf("OpenIncident: %v", err)
	}
}

// TestNodeCommands: a command submitted for a node wakes that node's
// listener (not another's), is claimed once however many claim at once,
// and carries its outcome back to whoever asks.
func TestNodeCommands(t *testing.T) {
	srv := pgtest.New(t)
	db := srv.NewDB(t)
	a, b := openDB(t, srv, db), openDB(t, srv, db)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	woke := make(chan struct{}, 16)
	listened := make(chan error, 1)
	go func() {
		listened <- a.ListenCommands(ctx, "mx-a", func() { woke <- struct{}{} })
	}()
	<-woke // once at the start, for what was there before
	if _, err := b.SubmitCommand(t.Context(), store.NodeCommand{Node: "mx-b", Op: store.HoldDeleted, HoldID: 1, Actor: "cli:root"}); err != nil {
		t.Fatal(err)
	}
	id, err := b.SubmitCommand(t.Context(), store.NodeCommand{Node: "mx-a", Op: store.HoldReleased, HoldID: 7, Actor: "web:alice", From: "mx-b"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-woke:
	case <-time.After(10 * time.Second):
		t.Fatal("node mx-a not woken")
	}
	if _, err := b.SubmitCommand(t.Context(), store.NodeCommand{Node: "mx-a", Op: "held", HoldID: 7}); err == nil {
		t.Fatal("a command other than release or delete was taken")
	}
	// Hold 7 has a command waiting: another, from either node, is refused.
	if _, err := a.SubmitCommand(t.Context(), store.NodeCommand{Node: "mx-a", Op: store.HoldDeleted, HoldID: 7, Actor: "web:bob", From: "mx-a"}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a second command for a hold with one waiting: %v", err)
	}
	// A hold ID past 32 bits takes a command too (the lock's key is
	// folded into 32 bits).
	if _, err := a.SubmitCommand(t.Context(), store.NodeCommand{Node: "mx-c", Op: store.HoldReleased, HoldID: 1<<33 + 8, Actor: "web:bob"}); err != nil {
		t.Fatalf("a hold ID past 32 bits: %v", err)
	}
	// Two admins at the same moment, on two nodes, on hold 8: one queues.
	var submitted, refused atomic.Int32
	var sw sync.WaitGroup
	for i := range 8 {
		s := []*Store{a, b}[i%2]
		sw.Go(func() {
			_, err := s.SubmitCommand(t.Context(), store.NodeCommand{Node: "mx-b", Op: []store.HoldState{store.HoldReleased, store.HoldDeleted}[i%2], HoldID: 8, Actor: "web:x"})
			switch {
			case err == nil:
				submitted.Add(1)
			case errors.Is(err, store.ErrConflict):
				refused.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	sw.Wait()
	if submitted.Load() != 1 || refused.Load() != 7 {
		t.Fatalf("concurrent submits: %d taken, %d refused", submitted.Load(), refused.Load())
	}
	// Claimed once, by one of several claimers.
	var mu sync.Mutex
	var claimed []store.NodeCommand
	var wg sync.WaitGroup
	for _, s := range []*Store{a, b, a, b} {
		wg.Go(func() {
			cs, err := s.ClaimCommands(t.Context(), "mx-a", 10)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			claimed = append(claimed, cs...)
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(claimed) != 1 || claimed[0].ID != id || claimed[0].Op != store.HoldReleased || claimed[0].HoldID != 7 ||
		claimed[0].Actor != "web:alice" || claimed[0].From != "mx-b" || claimed[0].State != store.CommandRunning {
		t.Fatalf("claimed %+v", claimed)
	}
	// The claiming process is killed before it records the outcome: its
	// node's next start puts the command back, and it is claimed again.
	if n, err := b.RequeueCommands(t.Context(), "mx-b"); err != nil || n != 0 {
		t.Fatalf("requeue of another node: %d, %v", n, err)
	}
	if n, err := b.RequeueCommands(t.Context(), "mx-a"); err != nil || n != 1 {
		t.Fatalf("requeue: %d, %v", n, err)
	}
	if c, err := b.Command(t.Context(), id); err != nil || c.State != store.CommandPending {
		t.Fatalf("requeued command %+v, %v", c, err)
	}
	if cs, err := a.ClaimCommands(t.Context(), "mx-a", 10); err != nil || len(cs) != 1 || cs[0].ID != id {
		t.Fatalf("claimed again %+v, %v", cs, err)
	}
	if err := a.FinishCommand(t.Context(), id, store.CommandFailed, "conflict: hold 7 is deleted"); err != nil {
		t.Fatal(err)
	}
	if err := a.FinishCommand(t.Context(), id, store.CommandDone, ""); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second finish: %v", err)
	}
	c, err := b.Command(t.Context(), id)
	if err != nil || c.State != store.CommandFailed || c.Detail != "conflict: hold 7 is deleted" || c.DoneAt.IsZero() {
		t.Fatalf("command %+v, %v", c, err)
	}
	if _, err := b.Command(t.Context(), 9999); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing command: %v", err)
	}
	// Heartbeats.
	if other, err := a.Heartbeat(t.Context(), "mx-a", "1.2.3", "i1"); err != nil || other {
		t.Fatalf("first heartbeat: other %v, %v", other, err)
	}
	if _, err := b.Heartbeat(t.Context(), "mx-b", "1.2.3", "i2"); err != nil {
		t.Fatal(err)
	}
	if other, err := a.Heartbeat(t.Context(), "mx-a", "1.2.3", "i1"); err != nil || other {
		t.Fatalf("same process again: other %v, %v", other, err)
	}
	// mx-a restarted: its new process sees its predecessor's beat once.
	if other, err := a.Heartbeat(t.Context(), "mx-a", "1.2.4", "i3"); err != nil || !other {
		t.Fatalf("a new process of mx-a: other %v, %v", other, err)
	}
	if other, err := a.Heartbeat(t.Context(), "mx-a", "1.2.4", "i3"); err != nil || other {
		t.Fatalf("the new process again: other %v, %v", other, err)
	}
	ns, err := b.Nodes(t.Context())
	if err != nil || len(ns) != 2 || ns[0].Node != "mx-a" || ns[0].Version != "1.2.4" || time.Since(ns[0].SeenAt) > time.Minute {
		t.Fatalf("nodes %+v, %v", ns, err)
	}
	// Pending: mx-b's delete of hold 1 and the one command of hold 8 were
	// never claimed; mx-a's release was claimed and finished.
	if ns[0].Pending != 0 || ns[1].Pending != 2 || ns[0].Age > time.Minute {
		t.Fatalf("nodes %+v", ns)
	}
	// The age is the database's: a heartbeat an hour old is an hour old
	// whatever this machine's clock says.
	if _, err := a.pool.Exec(t.Context(), `UPDATE nodes SET seen_at = now() - interval '1 hour' WHERE node = 'mx-b'`); err != nil {
		t.Fatal(err)
	}
	if ns, err = a.Nodes(t.Context()); err != nil || ns[1].Age < 59*time.Minute || ns[1].Age > 61*time.Minute {
		t.Fatalf("nodes %+v, %v", ns, err)
	}
	cancel()
	if err := <-listened; err == nil {
		t.Fatal("ListenCommands returned no error when its context ended")
	}
}

// TestNewWithoutServer: a Store made while PostgreSQL does not answer
// dials nothing; every query fails with ErrNotMigrated, which Unreachable
// says waiting helps; once the server is up, Migrate migrates and queries
// run. A wrong password is an answer, not an outage: waiting does not
// help, and a newer schema neither.
func TestNewWithoutServer(t *testing.T) {
	srv := pgtest.New(t)
	db := srv.NewDB(t)
	srv.Stop()
	s, err := New(Options{ConnString: srv.ConnString(db), Password: srv.Password})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.CountHolds(t.Context(), store.HoldFilter{})
	if err == nil || !Unreachable(err) {
		t.Fatalf("query with the server down: %v (unreachable %v)", err, Unreachable(err))
	}
	err = s.Migrate(t.Context())
	if err == nil || !Unreachable(err) || s.Migrated() {
		t.Fatalf("Migrate with the server down: %v (unreachable %v)", err, Unreachable(err))
	}
	srv.Start()
	// Up, not migrated by this Store yet: nothing reads the schema.
	_, err = s.CountHolds(t.Context(), store.HoldFilter{})
	if !errors.Is(err, ErrNotMigrated) || !Unreachable(err) {
		t.Fatalf("query before Migrate: %v (unreachable %v)", err, Unreachable(err))
	}
	if err := s.WriteProbe(t.Context()); !errors.Is(err, ErrNotMigrated) {
		t.Fatalf("write probe before Migrate: %v", err)
	}
	if err := s.Migrate(t.Context()); err != nil || !s.Migrated() {
		t.Fatalf("Migrate with the server up: %v", err)
	}
	if n, err := s.CountHolds(t.Context(), store.HoldFilter{}); err != nil || n.N != 0 {
		t.Fatalf("CountHolds after Migrate = %+v, %v", n, err)
	}
	if got := schemaVersions(t, s); len(got) != SchemaVersion() {
		t.Errorf("schema_migrations = %v after a late Migrate", got)
	}

	wrong, err := New(Options{ConnString: srv.ConnString(db), Password: "not-" + srv.Password})
	if err != nil {
		t.Fatal(err)
	}
	defer wrong.Close()
	if err := wrong.Migrate(t.Context()); err == nil || Unreachable(err) {
		t.Fatalf("Migrate with a wrong password: %v (unreachable %v)", err, Unreachable(err))
	}
	srv.Exec(t, db, `INSERT INTO schema_migrations (version) VALUES (99)`)
	newer, err := New(Options{ConnString: srv.ConnString(db), Password: srv.Password})
	if err != nil {
		t.Fatal(err)
	}
	defer newer.Close()
	if err := newer.Migrate(t.Context()); !errors.Is(err, ErrNewerSchema) || Unreachable(err) {
		t.Fatalf("Migrate of a newer schema: %v", err)
	}
}

// TestUpgradeKeepsRecords: a database at every earlier schema version,
// with records in it written as that version wrote them, is migrated by
// Open to the current one with its records intact; a node of the
// previous version, still running, keeps writing its heartbeat on the new
// schema (migrations only add).
func TestUpgradeKeepsRecords(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	srv := pgtest.New(t)
	for from := 1; from < len(ms); from++ {
		t.Run(fmt.Sprintf("from-%d", from), func(t *testing.T) {
			db := srv.NewDB(t)
			srv.Exec(t, db, `CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`)
			for _, m := range ms[:from] {
				srv.Exec(t, db, m.sql)
				srv.Exec(t, db, fmt.Sprintf(`INSERT INTO schema_migrations (version) VALUES (%d)`, m.version))
			}
			// Records as version 1 wrote them: a hold, an account.
			srv.Exec(t, db, `INSERT INTO holds (queue_id, path, account, sender, recipients, recipient_count, subject, client, client_family,
				client_address, reasons, size, headers, preview, held_at, state, state_at, state_by)
				VALUES ('4OLD1', 'milter', 'u@example.edu', 'u@example.edu', '{r@example.net}', 1, 's', 'zclient', 'scripted',
				'192.0.2.1', '{bulk-from-scripted-client}', 10, '', '', now(), 'held', now(), '')`)
			srv.Exec(t, db, `INSERT INTO accounts (name, state, state_at, state_by, reason) VALUES ('u@example.edu', 'restricted', now(), 'cli:root', 'old')`)
			if from >= 2 {
				srv.Exec(t, db, `INSERT INTO nodes (node, seen_at, version) VALUES ('mx-old', now(), '0.9')`)
			}
			s := openDB(t, srv, db)
			want := make([]int, len(ms))
			for i := range want {
				want[i] = i + 1
			}
			if got := schemaVersions(t, s); !slices.Equal(got, want) {
				t.Fatalf("schema_migrations = %v, want %v", got, want)
			}
			hs, err := s.ListHolds(t.Context(), store.HoldFilter{State: store.HoldHeld, Limit: 10})
			if err != nil || len(hs) != 1 || hs[0].QueueID != "4OLD1" || hs[0].Reasons[0] != "bulk-from-scripted-client" {
				t.Fatalf("holds after the upgrade: %+v, %v", hs, err)
			}
			if a, err := s.GetAccount(t.Context(), "u@example.edu"); err != nil || a.State != store.AccountRestricted {
				t.Fatalf("account after the upgrade: %+v, %v", a, err)
			}
			// The previous version's heartbeat statement still works.
			srv.Exec(t, db, `INSERT INTO nodes (node, seen_at, version) VALUES ('mx-old', now(), '0.9')
				ON CONFLICT (node) DO UPDATE SET seen_at = now(), version = excluded.version`)
			if _, err := s.Heartbeat(t.Context(), "mx-new", "1.0", "i1"); err != nil {
				t.Fatal(err)
			}
			if ns, err := s.Nodes(t.Context()); err != nil || len(ns) != 2 {
				t.Fatalf("nodes %+v, %v", ns, err)
			}
		})
	}
}
