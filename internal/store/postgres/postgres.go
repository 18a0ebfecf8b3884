package postgres

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
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
	pool     *pgxpool.Pool
	logger   *slog.Logger
	where    string      // host:port/database, for errors and logs
	migrated atomic.Bool // the schema is this build's: queries may run
}

// ErrNotMigrated is the error of every query of a Store made with New
// before Migrate succeeded: nothing reads or writes a schema that may be
// older than this build's.
var ErrNotMigrated = errors.New("the schema is not migrated yet (PostgreSQL did not answer when this node started)")

// ErrNewerSchema is Migrate's error when the database's schema is newer
// than this build knows: the node must be upgraded, waiting does not help.
var ErrNewerSchema = errors.New("schema newer than this mailbrake knows")

// migrating marks Migrate's own context: its queries pass the gate.
type migrating struct{}

// Open connects to the database, migrates its schema to this build's
// version (see the package documentation) and returns the Store. The
// caller must Close it.
func Open(ctx context.Context, o Options) (*Store, error) {
	s, err := New(o)
	if err != nil {
		return nil, err
	}
	if err := s.Migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// ErrConnStringPassword: the connection string itself holds a password.
var ErrConnStringPassword = errors.New("the connection string holds a password")

// CheckConnString checks a connection URL or key=value string as New
// reads it (pool_* settings included), with an error that never quotes
// it, and refuses one that holds a password itself
// (ErrConnStringPassword): a password comes from a file. The string is
// looked at, not what pgx makes of it, which takes the password from
// PGPASSWORD or the .pgpass file too — both fine.
func CheckConnString(s string) error {
	if _, err := pgxpool.ParseConfig(s); err != nil {
		msg := "not a PostgreSQL connection URL or key=value string"
		if strings.Contains(err.Error(), "pool_") {
			msg += " (a pool_* setting is invalid)"
		}
		return errors.New(msg)
	}
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		u, err := url.Parse(s)
		if err != nil {
			return errors.New("not a PostgreSQL connection URL")
		}
		if _, ok := u.User.Password(); ok || u.Query().Has("password") {
			return ErrConnStringPassword
		}
		return nil
	}
	if dsnPassword.MatchString(s) {
		return ErrConnStringPassword
	}
	return nil
}

// dsnPassword finds a password setting in a key=value string.
var dsnPassword = regexp.MustCompile(`(^|\s)password\s*=`)

// New returns a Store without connecting: every query fails with
// ErrNotMigrated until Migrate succeeds. A node that starts while
// PostgreSQL does not answer uses it so, and migrates when it answers.
// The caller must Close it.
func New(o Options) (*Store, error) {
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
	s := &Store{logger: logger.With("store", "postgres", "database", where), where: where}
	cfg.PrepareConn = func(ctx context.Context, _ *pgx.Conn) (bool, error) {
		if s.migrated.Load() || ctx.Value(migrating{}) != nil {
			return true, nil
		}
		return true, fmt.Errorf("postgres store: %s: %w", where, ErrNotMigrated)
	}
	// NewWithConfig connects lazily: nothing is dialled here.
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres store: %s: %w", where, err)
	}
	s.pool = pool
	return s, nil
}

// Migrate brings the schema to this build's version (once per Store; later
// calls return nil at once) and lets queries through. Its error says
// whether waiting can help: Unreachable.
func (s *Store) Migrate(ctx context.Context) error {
	if s.migrated.Load() {
		return nil
	}
	from, to, err := s.migrate(context.WithValue(ctx, migrating{}, true))
	if err != nil {
		return fmt.Errorf("postgres store: %s: %w", s.where, err)
	}
	if from != to {
		s.logger.Info("schema migrated", "from_version", from, "to_version", to)
	}
	s.logger.Debug("store opened", "schema_version", to)
	s.migrated.Store(true)
	return nil
}

// Migrated reports whether Migrate succeeded.
func (s *Store) Migrated() bool { return s.migrated.Load() }

// Unreachable reports whether err (from Migrate, or any query) says the
// database could not be reached — refused, timed out, shutting down or
// starting up — rather than that it answered and refused (a wrong
// password, no such database, a certificate that does not verify, a
// schema newer than this build): waiting helps only the former.
func Unreachable(err error) bool {
	if err == nil || errors.Is(err, ErrNewerSchema) {
		return false
	}
	if errors.Is(err, ErrNotMigrated) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// Class 08: connection exception; 57P01–57P03: admin or crash
		// shutdown, cannot connect now (starting up or in recovery);
		// 53: insufficient resources (too many connections).
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03" || strings.HasPrefix(pe.Code, "53")
	}
	var ue x509.UnknownAuthorityError
	var he x509.HostnameError
	var ce x509.CertificateInvalidError
	if errors.As(err, &ue) || errors.As(err, &he) || errors.As(err, &ce) {
		return false
	}
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ne) || errors.As(err, &oe) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
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
