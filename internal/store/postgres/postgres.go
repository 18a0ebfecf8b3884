package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mailbrake/mailbrake/internal/store"
)

var (
	_ store.Quarantine = (*Store)(nil)
	_ store.Audit      = (*Store)(nil)
	_ store.Snapshots  = (*Store)(nil)
	_ store.Accounts   = (*Store)(nil)
	_ store.Incidents  = (*Store)(nil)
	_ store.Users      = (*Store)(nil)
	_ store.Trust      = (*Store)(nil)
	_ store.Retention  = (*Store)(nil)
)

// defaultLimit is the list size when a filter leaves Limit at 0, as
// documented in store.HoldFilter.
const defaultLimit = 100

// txAttempts bounds how often a transaction that PostgreSQL aborted to
// break a deadlock (two nodes locking the same rows in another order) or a
// serialization conflict is run again.
const txAttempts = 5

// Options says how to reach the database.
type Options struct {
	// ConnString is a libpq connection string, as a URL
	// ("postgres://mailbrake@db.example.org:5432/mailbrake?sslmode=verify-full&sslrootcert=/etc/mailbrake/db-ca.pem")
	// or as key=value pairs ("host=db.example.org dbname=mailbrake
	// user=mailbrake sslmode=verify-full"). TLS is set there: sslmode,
	// sslrootcert, sslcert and sslkey. It should not hold the password.
	ConnString string
	// Password, when not empty, is the password (read from a file by the
	// caller); it replaces any password in ConnString. It is never logged
	// nor put in an error.
	Password string
	// MaxConns bounds the connections of this node's pool (0: pgxpool's
	// default, the larger of 4 and the number of CPUs).
	MaxConns int32
	// Logger receives the store's own log lines (nil discards). Record
	// contents and credentials never reach it.
	Logger *slog.Logger
}

// Store is a PostgreSQL-backed store. Its methods are safe for concurrent
// use, and several Stores (one per node) may share a database.
type Store struct {
	pool   *pgxpool.Pool
	logger *slog.Logger
	where  string // host:port/database, for errors and logs
}

// Open connects to the database, migrates its schema to this build's
// version (see the package documentation) and returns the Store. The
// caller must Close it.
func Open(ctx context.Context, o Options) (*Store, error) {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if o.ConnString == "" {
		return nil, errors.New("postgres store: empty connection string")
	}
	cfg, err := pgxpool.ParseConfig(o.ConnString)
	if err != nil {
		// pgconn's parse errors show the string with its password masked.
		return nil, fmt.Errorf("postgres store: connection string: %w", err)
	}
	if o.Password != "" {
		cfg.ConnConfig.Password = o.Password
	}
	if o.MaxConns > 0 {
		cfg.MaxConns = o.MaxConns
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "mailbrake"
	}
	where := net.JoinHostPort(cfg.ConnConfig.Host, strconv.Itoa(int(cfg.ConnConfig.Port))) + "/" + cfg.ConnConfig.Database
	logger = logger.With("store", "postgres", "database", where)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres store: %s: %w", where, err)
	}
	s := &Store{pool: pool, logger: logger, where: where}
	from, to, err := s.migrate(ctx)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres store: %s: %w", where, err)
	}
	if from != to {
		logger.Info("schema migrated", "from_version", from, "to_version", to)
	}
	logger.Debug("store opened", "schema_version", to)
	return s, nil
}

// Close closes every connection of the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Ping reports whether the database answers. It is the readiness check.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres store: %s: %w", s.where, err)
	}
	return nil
}

// WriteProbe commits a write of one row, so that a database that takes
// no writes (a read-only standby, a full disk) shows as an error. It is
// part of the readiness check.
func (s *Store) WriteProbe(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO health (id, at) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET at = excluded.at`, time.Now())
	if err != nil {
		return fmt.Errorf("postgres store: %s: write probe: %w", s.where, err)
	}
	return nil
}

// writeTx runs fn in a transaction (read committed) and commits it when
// fn returns nil. A transaction PostgreSQL aborted to break a deadlock or
// a serialization conflict runs again, fn and all.
func (s *Store) writeTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := pgx.BeginFunc(ctx, s.pool, fn)
		if err == nil || attempt == txAttempts || !retryable(err) {
			return err
		}
		s.logger.Debug("transaction retried", "attempt", attempt, "err", err)
	}
}

// retryable reports whether err is a deadlock or serialization failure.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// uniqueViolation reports whether err is a unique constraint's.
func uniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// utc returns a time read from the database in UTC.
func utc(t time.Time) time.Time { return t.UTC() }

// utcMicro is t as the database keeps it: UTC, microseconds.
func utcMicro(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// limit applies the default list size.
func limit(n int) int {
	if n <= 0 {
		return defaultLimit
	}
	return n
}

// text returns s as PostgreSQL's text takes it: valid UTF-8 without NUL
// bytes, each invalid sequence and NUL replaced by U+FFFD. What mail
// brings (a header, a subject, an address) may hold either; SQLite keeps
// such bytes as they are, PostgreSQL would refuse the whole record.
func text(s string) string {
	if utf8.ValidString(s) && !strings.Contains(s, "\x00") {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// texts applies text to every element of l.
func texts(l []string) []string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = text(s)
	}
	return out
}

// list returns l, or an empty list for nil: the list columns are NOT NULL
// and pgx sends a nil slice as NULL.
func list(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}
