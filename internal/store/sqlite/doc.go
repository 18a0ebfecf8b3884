// Package sqlite is the embedded store backend: one SQLite file, opened with
// the pure-Go driver modernc.org/sqlite, so the daemon builds with
// CGO_ENABLED=0. It implements store.Quarantine, store.Audit and
// store.Snapshots for a single-node installation. It owns the file, its
// schema and its migrations; it does not decide anything about the records
// it keeps, and it never logs their contents.
//
// # Connections
//
// A Store holds two connection pools on the same file: one writer
// connection and a small read-only pool. Writes are rare (a hold, an audit
// line, a periodic snapshot) and all go through the single writer, so they
// are serialised in Go instead of contending for SQLite's lock, and every
// write transaction starts with BEGIN IMMEDIATE, so it never has to upgrade
// a read lock (which in WAL mode can fail with SQLITE_BUSY whatever the busy
// timeout). Reads are admin queries (list, get); in WAL mode readers never
// block the writer nor wait for it, so an admin paging through the
// quarantine does not delay a hold taken on the mail path. The reader
// connections are opened with query_only so that a write can only ever
// happen on the writer. A read that follows a committed write sees it.
//
// Every connection sets busy_timeout (for other processes on the same file,
// such as a backup), synchronous=NORMAL (durable across a process crash; in
// WAL mode a power loss can lose only the last transactions, never corrupt
// the file) and foreign_keys. journal_mode=WAL is persistent in the file.
//
// # Schema
//
// The schema is versioned with PRAGMA user_version: migration i (counting
// from one) brings the file from version i-1 to version i. Open applies the
// pending migrations in order in one transaction, so a file is either fully
// migrated or untouched, and refuses a file whose version is newer than this
// build knows. Recipients and reasons are JSON arrays in TEXT columns. Times
// are INTEGER microseconds since the Unix epoch, UTC (the precision of
// PostgreSQL's timestamptz); they sort and compare as numbers.
//
// # Files
//
// Open creates a missing database file with mode 0600 and a missing
// directory with mode 0700; SQLite gives its -wal and -shm files the mode of
// the database file. An existing file or directory keeps its mode, with a
// warning in the log when others can read it.
package sqlite
