package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// migrationFiles are the schema changes, NNNN_name.sql: file N moves a
// database from version N-1 to N. Released files never change; a new
// schema is a new file.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLock is the pg_advisory_xact_lock key that serialises migrating
// nodes: "mailbrak" in ASCII.
const migrationLock int64 = 0x6d61696c6272616b

type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in order. Their versions
// must be 1, 2, … without a gap.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries { // ReadDir sorts by name
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("migration file %q is not NNNN_name.sql", e.Name())
		}
		if v != len(out)+1 {
			return nil, fmt.Errorf("migration file %q: version %d, want %d", e.Name(), v, len(out)+1)
		}
		b, err := migrationFiles.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: e.Name(), sql: string(b)})
	}
	return out, nil
}

// SchemaVersion is the schema version this build migrates to.
func SchemaVersion() int {
	ms, err := migrations()
	if err != nil {
		panic(err) // the embedded files are checked by the tests
	}
	return len(ms)
}

// migrate brings the database to the last version in one transaction,
// under an advisory lock (so nodes starting together migrate one after
// the other, and the later ones find nothing to do), and returns the
// versions before and after. A database is either fully migrated or left
// as it was. A version newer than this build knows is refused.
func (s *Store) migrate(ctx context.Context) (from, to int, err error) {
	ms, err := migrations()
	if err != nil {
		return 0, 0, err
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
			return fmt.Errorf("taking the migration lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer     PRIMARY KEY,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return fmt.Errorf("creating schema_migrations: %w", err)
		}
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&from); err != nil {
			return fmt.Errorf("reading schema version: %w", err)
		}
		if from > len(ms) {
			return newerSchemaError{from, len(ms)}
		}
		for _, m := range ms[from:] {
			// Without arguments, Exec sends the file in one simple query:
			// every statement of it, in this transaction.
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, now())`, m.version); err != nil {
				return fmt.Errorf("migration %s: recording it: %w", m.name, err)
			}
		}
		return nil
	})
	if err != nil {
		return from, from, err
	}
	return from, len(ms), nil
}

// newerSchemaError is migrate's refusal of a schema newer than this build
// knows; it is ErrNewerSchema.
type newerSchemaError struct{ found, known int }

func (e newerSchemaError) Error() string {
	return fmt.Sprintf("schema version %d is newer than this mailbrake knows (%d); upgrade mailbrake on this node (every node must run the same version or newer)", e.found, e.known)
}

func (e newerSchemaError) Is(target error) bool { return target == ErrNewerSchema }
