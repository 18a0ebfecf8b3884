package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

	sqlitedrv "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/mailbrake/mailbrake/internal/store"
)

var (
	_ store.Quarantine = (*Store)(nil)
	_ store.Audit      = (*Store)(nil)
	_ store.Snapshots  = (*Store)(nil)
)

// busyTimeout is how long a statement waits for a lock held by another
// process on the same file (a second daemon by mistake, sqlite3 .backup)
// before it fails with SQLITE_BUSY. Our own writes never wait on each
// other (one writer connection). Five seconds outlasts any write we make
// (milliseconds) and a backup step, yet is well below the readiness probe
// and MTA timeouts, so a stuck lock surfaces as an error, not a hang.
const busyTimeout = 5 * time.Second

// readers is the size of the read-only pool. Reads are admin queries,
// rarely more than a handful at once; four lets the UI, the API and a CLI
// listing run together without holding many idle file handles.
const readers = 4

// defaultLimit is the list size when a filter leaves Limit at 0, as
// documented in store.HoldFilter.
const defaultLimit = 100

// Store is a SQLite-backed store. Its methods are safe for concurrent use.
type Store struct {
	path   string
	logger *slog.Logger
	w      *sql.DB // exactly one connection: every write goes through it
	r      *sql.DB // read-only pool
}

// Open opens the SQLite database at path, creating it (mode 0600, its
// directory 0700) when missing, and migrates its schema to the current
// version. A nil logger discards. The caller must Close the Store.
func Open(ctx context.Context, path string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if path == "" {
		return nil, errors.New("sqlite store: empty database path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite store: resolving %q: %w", path, err)
	}
	logger = logger.With("store", "sqlite", "path", abs)
	if err := prepareFile(abs, logger); err != nil {
		return nil, fmt.Errorf("sqlite store: %w", err)
	}

	s := &Store{path: abs, logger: logger}
	// The writer goes first: it switches the file to WAL and migrates it
	// before any reader exists.
	s.w, err = sql.Open("sqlite", dsn(abs, true))
	if err != nil {
		return nil, fmt.Errorf("sqlite store: opening %s: %w", abs, err)
	}
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxIdleTime(0)
	s.w.SetConnMaxLifetime(0)
	// Connecting applies the pragmas; a file that is not a database fails here.
	if err := s.w.PingContext(ctx); err != nil {
		s.w.Close()
		return nil, fmt.Errorf("sqlite store: %s: %w", abs, explain(err))
	}
	from, to, err := s.migrate(ctx)
	if err != nil {
		s.w.Close()
		return nil, fmt.Errorf("sqlite store: %s: %w", abs, explain(err))
	}

	s.r, err = sql.Open("sqlite", dsn(abs, false))
	if err != nil {
		s.w.Close()
		return nil, fmt.Errorf("sqlite store: opening %s for reading: %w", abs, err)
	}
	s.r.SetMaxOpenConns(readers)
	s.r.SetMaxIdleConns(readers)
	if err := s.r.PingContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite store: %s: %w", abs, explain(err))
	}

	if from != to {
		logger.Info("schema migrated", "from_version", from, "to_version", to)
	}
	logger.Debug("store opened", "schema_version", to)
	return s, nil
}

// dsn returns the driver's data source name for the file at the absolute
// path abs. It is a SQLite URI, so that any character in the path is
// percent-encoded instead of being read as a parameter.
func dsn(abs string, writer bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	if writer {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Set("_txlock", "immediate")
	} else {
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Add("_pragma", "query_only(1)")
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	return u.String()
}

// prepareFile creates the directory (0700) and an empty database file
// (0600) when they are missing, so SQLite never creates them with its own
// default modes. An empty file is a valid empty database.
func prepareFile(abs string, logger *slog.Logger) error {
	dir := filepath.Dir(abs)
	switch fi, err := os.Stat(dir); {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("creating directory: %w", err)
		}
	case err != nil:
		return fmt.Errorf("checking directory: %w", err)
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	case fi.Mode().Perm()&0o007 != 0:
		logger.Warn("database directory is accessible by others", "dir", dir, "mode", fi.Mode().Perm().String())
	}

	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		if err := f.Close(); err != nil {
			return fmt.Errorf("creating database file: %w", err)
		}
		logger.Info("created database file")
		return nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("creating database file: %w", err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return fmt.Errorf("checking database file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", abs)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		logger.Warn("database file is accessible by group or others", "mode", fi.Mode().Perm().String())
	}
	return nil
}

// explain adds what an admin needs to know to the errors SQLite reports
// when the file is not a usable database.
func explain(err error) error {
	var se *sqlitedrv.Error
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code() & 0xff { // the primary result code
	case sqlite3.SQLITE_NOTADB:
		return fmt.Errorf("not a SQLite database (wrong path, or the file is encrypted or damaged): %w", err)
	case sqlite3.SQLITE_CORRUPT:
		return fmt.Errorf("the database file is corrupt; restore it from a backup: %w", err)
	case sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM:
		return fmt.Errorf("cannot write the database file or its directory (for the -wal and -shm files): %w", err)
	}
	return err
}

// WriteProbe commits a write of one row, so that a full disk, a read-only
// file system or a lock held by another process shows as an error. It is
// part of the readiness check.
func (s *Store) WriteProbe(ctx context.Context) error {
	return s.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO health (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at`, time.Now().UnixMicro())
		return err
	})
}

// Ping reports whether both the writer and the readers can reach the
// database. It is the readiness check.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite store: writer: %w", err)
	}
	var one int
	if err := s.r.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("sqlite store: reader: %w", err)
	}
	return nil
}

// Close closes the readers and then the writer. The last connection to
// close checkpoints the write-ahead log into the database file.
func (s *Store) Close() error {
	var errs []error
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite store: closing %s: %w", s.path, err)
	}
	return nil
}

// writeTx runs fn in a write transaction (BEGIN IMMEDIATE on the single
// writer connection) and commits it when fn returns nil.
func (s *Store) writeTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		if rerr := tx.Rollback(); rerr != nil && !errors.Is(rerr, sql.ErrTxDone) {
			s.logger.Warn("rollback failed", "err", rerr)
		}
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	return nil
}

// toDB and fromDB convert times to and from the stored form: microseconds
// since the Unix epoch. A zero time.Time survives the round trip.
func toDB(t time.Time) int64 { return t.UnixMicro() }

func fromDB(us int64) time.Time { return time.UnixMicro(us).UTC() }
