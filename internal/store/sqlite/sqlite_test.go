package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/store"
	"github.com/mailbrake/mailbrake/internal/store/storetest"
)

func openTest(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(t.Context(), path, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// testWriter sends log output to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Backend {
		return openTest(t, filepath.Join(t.TempDir(), "mailbrake.db"))
	})
}

func pragma(t *testing.T, db *sql.DB, name string) string {
	t.Helper()
	var v string
	if err := db.QueryRowContext(t.Context(), "PRAGMA "+name).Scan(&v); err != nil {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	return v
}

func TestConnectionSettings(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "mailbrake.db"))
	for _, tc := range []struct {
		conn, pragma, want string
		db                 *sql.DB
	}{
		{"writer", "journal_mode", "wal", s.w},
		{"writer", "synchronous", "1", s.w}, // NORMAL
		{"writer", "foreign_keys", "1", s.w},
		{"writer", "busy_timeout", "5000", s.w},
		{"writer", "query_only", "0", s.w},
		{"reader", "journal_mode", "wal", s.r},
		{"reader", "foreign_keys", "1", s.r},
		{"reader", "busy_timeout", "5000", s.r},
		{"reader", "query_only", "1", s.r},
	} {
		if got := pragma(t, tc.db, tc.pragma); got != tc.want {
			t.Errorf("%s: PRAGMA %s = %s, want %s", tc.conn, tc.pragma, got, tc.want)
		}
	}
	if got := s.w.Stats().MaxOpenConnections; got != 1 {
		t.Errorf("writer MaxOpenConnections = %d, want 1", got)
	}
	if _, err := s.r.ExecContext(t.Context(), `INSERT INTO snapshots (key, value) VALUES ('k', x'00')`); err == nil {
		t.Error("a write on the read pool succeeded")
	}
}

func TestIndexesUsed(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "mailbrake.db"))
	for _, tc := range []struct {
		query string
		args  []any
		index string
	}{
		{`SELECT id FROM holds WHERE queue_id = ? AND queue_id <> ''`, []any{"4ABC"}, "INDEX holds_queue_id"},
		{`SELECT id FROM holds ORDER BY held_at DESC, id DESC LIMIT 100`, nil, "INDEX holds_held_at"},
		{`SELECT id FROM holds WHERE state = ? ORDER BY held_at DESC, id DESC LIMIT 100`, []any{"held"}, "INDEX holds_state_held_at"},
		{`SELECT id FROM holds WHERE account = ? ORDER BY held_at DESC, id DESC LIMIT 100`, []any{"a@example.org"}, "INDEX holds_account_held_at"},
		{`SELECT id FROM audit WHERE target = ? ORDER BY time DESC, id DESC LIMIT 100`, []any{"hold:1"}, "INDEX audit_target_time"},
		{`SELECT id FROM audit ORDER BY time DESC, id DESC LIMIT 100`, nil, "INDEX audit_time"},
		{`SELECT EXISTS (SELECT 1 FROM incident_evidence WHERE incident_id = ? AND queue_id = ? AND queue_id <> '' AND reason = ?)`, []any{1, "4ABC", "r"}, "INDEX incident_evidence_message"},
		{`SELECT count(*), coalesce(max(seq) + 1, 0) FROM incident_evidence WHERE incident_id = ?`, []any{1}, "USING PRIMARY KEY (incident_id=?)"},
	} {
		rows, err := s.r.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+tc.query, tc.args...)
		if err != nil {
			t.Fatalf("EXPLAIN %s: %v", tc.query, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		joined := strings.Join(plan, "; ")
		if !strings.Contains(joined, tc.index) || strings.Contains(joined, "TEMP B-TREE") {
			t.Errorf("%s\nplan: %s\nwant %s and no sort step", tc.query, joined, tc.index)
		}
	}
}

func TestQueueIDUniqueInSchema(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "mailbrake.db"))
	ins := `INSERT INTO holds (queue_id, held_at, state, state_at) VALUES (?, 0, 'held', 0)`
	for _, q := range []string{"", "", "4ABC"} {
		if _, err := s.w.ExecContext(t.Context(), ins, q); err != nil {
			t.Fatalf("insert %q: %v", q, err)
		}
	}
	if _, err := s.w.ExecContext(t.Context(), ins, "4ABC"); err == nil {
		t.Error("a second row with the same queue id was accepted")
	}
}

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mailbrake.db")
	ctx := t.Context()
	held := time.Date(2025, 6, 1, 12, 0, 0, 123_456_000, time.UTC)

	s, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	h, err := s.PutHold(ctx, &store.Hold{QueueID: "4REOPEN", Account: "a@example.org", Reasons: []string{"r1", "r2"}, HeldAt: held})
	if err != nil {
		t.Fatalf("PutHold: %v", err)
	}
	if err := s.SetHoldState(ctx, h.ID, store.HoldHeld, store.HoldReleased, "api:alice", held.Add(time.Minute)); err != nil {
		t.Fatalf("SetHoldState: %v", err)
	}
	if err := s.AppendAudit(ctx, store.AuditEntry{Time: held, Actor: "api:alice", Action: "quarantine-release", Target: "hold:1"}); err != nil {
		t.Fatalf("AppendAudit: %v", err)
	}
	if err := s.SaveSnapshots(ctx, map[string][]byte{"a@example.org": []byte("state")}); err != nil {
		t.Fatalf("SaveSnapshots: %v", err)
	}
	schema := schemaSQL(t, s)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	for round := range 3 {
		s := openTest(t, path)
		if v := pragma(t, s.w, "user_version"); v != strconv.Itoa(len(migrations)) {
			t.Errorf("round %d: user_version = %s with %d migrations", round, v, len(migrations))
		}
		if got := schemaSQL(t, s); got != schema {
			t.Errorf("round %d: schema changed on reopen:\n%s\nwant\n%s", round, got, schema)
		}
		got, err := s.GetHold(ctx, h.ID)
		if err != nil {
			t.Fatalf("round %d: GetHold: %v", round, err)
		}
		if got.QueueID != "4REOPEN" || got.State != store.HoldReleased || got.StateBy != "api:alice" ||
			!got.HeldAt.Equal(held) || strings.Join(got.Reasons, ",") != "r1,r2" {
			t.Errorf("round %d: hold after reopen = %+v", round, got)
		}
		if es, err := s.ListAudit(ctx, store.AuditFilter{}); err != nil || len(es) != 1 || es[0].Action != "quarantine-release" {
			t.Errorf("round %d: audit after reopen = %+v, %v", round, es, err)
		}
		if m, err := s.LoadSnapshots(ctx); err != nil || string(m["a@example.org"]) != "state" || len(m) != 1 {
			t.Errorf("round %d: snapshots after reopen = %q, %v", round, m, err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
}

// schemaSQL returns the schema as SQLite stores it.
func schemaSQL(t *testing.T, s *Store) string {
	t.Helper()
	rows, err := s.r.QueryContext(t.Context(), `SELECT type, name, sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY name`)
	if err != nil {
		t.Fatalf("reading schema: %v", err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var typ, name, sqlText string
		if err := rows.Scan(&typ, &name, &sqlText); err != nil {
			t.Fatal(err)
		}
		b.WriteString(typ + " " + name + ": " + sqlText + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestMigrateIdempotent(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "mailbrake.db"))
	before := schemaSQL(t, s)
	for range 2 {
		from, to, err := s.migrate(t.Context())
		if err != nil {
			t.Fatalf("migrate: %v", err)
		}
		if from != len(migrations) || to != len(migrations) {
			t.Errorf("migrate on a current file = %d→%d, want %d→%d", from, to, len(migrations), len(migrations))
		}
	}
	if after := schemaSQL(t, s); after != before {
		t.Errorf("schema changed:\n%s\nwant\n%s", after, before)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mailbrake.db")
	s := openTest(t, path)
	if _, err := s.w.ExecContext(t.Context(), "PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := Open(t.Context(), path, nil)
	if err == nil || !strings.Contains(err.Error(), "schema version 99 is newer") {
		t.Fatalf("Open of a newer schema = %v, want a 'newer' error", err)
	}
	s2, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	var v int
	if err := s2.QueryRow("PRAGMA user_version").Scan(&v); err != nil || v != 99 {
		t.Errorf("user_version after refused Open = %d, %v; want 99 untouched", v, err)
	}
}

// damagedDatabase returns a real database file whose schema page (page 1,
// after the 100-byte file header) has been overwritten.
func damagedDatabase(t *testing.T) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "good.db")
	s, err := Open(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 4096 || string(b[:16]) != "SQLite format 3\x00" {
		t.Fatalf("unexpected database file: %d bytes", len(b))
	}
	for i := 100; i < 4096; i++ {
		b[i] = 0xa5
	}
	return b
}

func TestNotADatabase(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content []byte
		want    string
	}{
		{"text file", []byte("store:\n  sqlite: /var/lib/mailbrake/mailbrake.db\n" + strings.Repeat("x", 4096)), "not a SQLite database"},
		{"random bytes", bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 2048), "not a SQLite database"},
		{"sqlite header then zeros", append([]byte("SQLite format 3\x00"), make([]byte, 8000)...), "not a SQLite database"},
		{"damaged schema page", damagedDatabase(t), "corrupt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "mailbrake.db")
			if err := os.WriteFile(path, tc.content, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(t.Context(), path, nil)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			msg := err.Error()
			if !strings.Contains(msg, path) || !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not name the file and say %q", msg, tc.want)
			}
			got, rerr := os.ReadFile(path)
			if rerr != nil || !bytes.Equal(got, tc.content) {
				t.Errorf("the file was modified by a failed Open (%v)", rerr)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path, want string }{
		{"empty path", "", "empty database path"},
		{"path is a directory", dir, "not a regular file"},
		{"parent is a file", filepath.Join(notDir, "mailbrake.db"), "not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(t.Context(), tc.path, nil)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestFileModes(t *testing.T) {
	top := t.TempDir()
	path := filepath.Join(top, "var", "mailbrake", "mailbrake.db")
	s := openTest(t, path)
	// Write so that the -wal and -shm files exist.
	if err := s.AppendAudit(t.Context(), store.AuditEntry{Time: time.Now(), Actor: "system", Action: "test", Target: "x"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want fs.FileMode
	}{
		{filepath.Join(top, "var"), 0o700 | fs.ModeDir},
		{filepath.Dir(path), 0o700 | fs.ModeDir},
		{path, 0o600},
		{path + "-wal", 0o600},
		{path + "-shm", 0o600},
	} {
		fi, err := os.Stat(tc.path)
		if err != nil {
			t.Errorf("stat: %v", err)
			continue
		}
		if got := fi.Mode() & (fs.ModeDir | fs.ModePerm); got != tc.want {
			t.Errorf("%s: mode %v, want %v", tc.path, got, tc.want)
		}
	}
}

func TestExistingFileModeKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mailbrake.db")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil { // regardless of umask
		t.Fatal(err)
	}
	var logs bytes.Buffer
	s, err := Open(t.Context(), path, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode of an existing file changed to %v", fi.Mode().Perm())
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "accessible by group or others") {
		t.Errorf("no warning about the file mode in the log:\n%s", logs.String())
	}
}

func TestPathNeedsNoEscaping(t *testing.T) {
	// Characters that mean something in a URI must reach the file system
	// as they are.
	path := filepath.Join(t.TempDir(), "odd dir #1", "mail?brake%20&x=1.db")
	s := openTest(t, path)
	if err := s.SaveSnapshots(t.Context(), map[string][]byte{"k": []byte("v")}); err != nil {
		t.Fatalf("SaveSnapshots: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database not at the given path: %v", err)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), filepath.Base(path)) {
			t.Errorf("unexpected file %q next to the database", e.Name())
		}
	}
}

func TestPing(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "mailbrake.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Ping(ctx); err == nil {
		t.Error("Ping with a cancelled context succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(t.Context()); err == nil {
		t.Error("Ping after Close succeeded")
	}
}

func TestLogsCarryNoContent(t *testing.T) {
	var logs bytes.Buffer
	path := filepath.Join(t.TempDir(), "new", "mailbrake.db")
	s, err := Open(t.Context(), path, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const secret = "SECRET-SUBJECT-b0dy"
	ctx := t.Context()
	h, err := s.PutHold(ctx, &store.Hold{QueueID: "4LOG", Subject: secret, Preview: secret, Headers: secret, Recipients: []string{secret}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutHold(ctx, &store.Hold{QueueID: "4LOG", Reasons: []string{secret}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetHoldState(ctx, h.ID, store.HoldReleased, store.HoldDeleted, secret, time.Now()); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("SetHoldState = %v, want ErrConflict", err)
	}
	if err := s.SaveSnapshots(ctx, map[string][]byte{"k": []byte(secret)}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "created database file") {
		t.Errorf("log lacks the creation line:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("message content reached the log:\n%s", logs.String())
	}
}

// TestMigrateEvidenceToRows: a file of schema 5 kept each incident's
// evidence as JSON in the incident row; version 6 moves it into rows of its
// own, order, times and fields intact, duplicates of one message's finding
// kept once.
func TestMigrateEvidenceToRows(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mailbrake.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, m := range migrations[:5] {
		for _, stmt := range m {
			if _, err := db.ExecContext(ctx, stmt); err != nil {
				t.Fatal(err)
			}
		}
	}
	evidence := `[{"time":"2026-05-01T10:00:00.123456Z","reason":"bulk-from-scripted-client","detail":"recipient_count=60","hold_id":7,"queue_id":"ABC","by":"system"},` +
		`{"time":"2026-05-01T10:00:01Z","reason":"bulk-from-scripted-client","queue_id":"ABC","by":"system"},` +
		`{"time":"2026-05-01T10:05:00Z","reason":"opened-by-admin","detail":"call the user","by":"cli:root(0)"}]`
	for _, stmt := range []string{
		`INSERT INTO incidents (id, account, state, severity, playbook, reasons, evidence, steps, opened, updated) VALUES
			(4, 'u@example.edu', 'open', 'high', 'contain-mass-sending', '["bulk-from-scripted-client"]', '` + evidence + `', '[]', 1, 2)`,
		`PRAGMA user_version = 5`,
	} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	s := openTest(t, path)
	in, err := s.GetIncident(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Evidence{
		{Time: time.Date(2026, 5, 1, 10, 0, 0, 123456000, time.UTC), Reason: "bulk-from-scripted-client", Detail: "recipient_count=60", HoldID: 7, QueueID: "ABC", By: "system"},
		{Time: time.Date(2026, 5, 1, 10, 5, 0, 0, time.UTC), Reason: "opened-by-admin", Detail: "call the user", By: "cli:root(0)"},
	}
	if len(in.Evidence) != len(want) {
		t.Fatalf("evidence after migration: %+v", in.Evidence)
	}
	for i := range want {
		if !in.Evidence[i].Time.Equal(want[i].Time) || in.Evidence[i].Reason != want[i].Reason || in.Evidence[i].Detail != want[i].Detail ||
			in.Evidence[i].HoldID != want[i].HoldID || in.Evidence[i].QueueID != want[i].QueueID || in.Evidence[i].By != want[i].By {
			t.Errorf("evidence %d = %+v, want %+v", i, in.Evidence[i], want[i])
		}
	}
	// New evidence follows the migrated rows.
	if _, res, err := s.OpenIncident(ctx, "u@example.edu", store.SeverityHigh, "", store.Evidence{Time: time.Date(2026, 5, 1, 11, 0, 0, 0, time.UTC), Reason: "r"}); err != nil || !res.Kept {
		t.Fatalf("new evidence: %+v %v", res, err)
	}
	if in, _ := s.GetIncident(ctx, 4); len(in.Evidence) != 3 || in.Evidence[2].Reason != "r" {
		t.Fatalf("after new evidence: %+v", in.Evidence)
	}
}

// TestSaveSnapshotsCancelled: rows are written without a per-row
// cancellable context, yet a cancelled save still writes nothing (the
// transaction is rolled back) and says so.
func TestSaveSnapshotsCancelled(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "m.db"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	snaps := map[string][]byte{}
	for i := range 5000 {
		snaps[fmt.Sprintf("acct%d@example.org", i)] = []byte("x")
	}
	if err := s.SaveSnapshots(ctx, snaps); err == nil {
		t.Fatal("a cancelled save reported success")
	}
	got, err := s.LoadSnapshots(t.Context())
	if err != nil || len(got) != 0 {
		t.Fatalf("after a cancelled save: %d snapshots, %v", len(got), err)
	}
}
