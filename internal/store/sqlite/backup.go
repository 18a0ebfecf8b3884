package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Backup writes a consistent copy of the database at path to dst (which
// must not exist; put it in a private directory, as SQLite creates it with
// the process's umask before it is made 0600) while the daemon may be
// writing to it: SQLite's VACUUM
// INTO reads one snapshot of the WAL database in a read transaction and
// writes a compact copy. The copy is then opened and checked (PRAGMA
// integrity_check). It returns the copy's schema version.
func Backup(ctx context.Context, path, dst string) (int, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return 0, err
	}
	if _, err := os.Stat(abs); err != nil {
		return 0, fmt.Errorf("sqlite backup: %w", err)
	}
	if _, err := os.Lstat(dst); err == nil {
		return 0, fmt.Errorf("sqlite backup: %s exists", dst)
	}
	db, err := sql.Open("sqlite", dsn(abs, false))
	if err != nil {
		return 0, fmt.Errorf("sqlite backup: %w", err)
	}
	defer db.Close()
	// VACUUM INTO is not a query: the reader connection's query_only
	// pragma would refuse it, so this connection turns it off.
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("sqlite backup: %s: %w", abs, explain(err))
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "PRAGMA query_only = 0"); err != nil {
		return 0, fmt.Errorf("sqlite backup: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "VACUUM INTO ?", dst); err != nil {
		os.Remove(dst)
		return 0, fmt.Errorf("sqlite backup: %s: %w", abs, explain(err))
	}
	if err := os.Chmod(dst, 0o600); err != nil {
		return 0, fmt.Errorf("sqlite backup: %w", err)
	}
	check, err := sql.Open("sqlite", "file:"+filepath.ToSlash(dst)+"?mode=ro")
	if err != nil {
		return 0, err
	}
	defer check.Close()
	var res string
	if err := check.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&res); err != nil || res != "ok" {
		return 0, fmt.Errorf("sqlite backup: the copy fails its integrity check: %q %v", res, err)
	}
	var version int
	if err := check.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return 0, fmt.Errorf("sqlite backup: %w", err)
	}
	if version == 0 {
		return 0, errors.New("sqlite backup: the copy has no schema (not a mailbrake database?)")
	}
	return version, nil
}
