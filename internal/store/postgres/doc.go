// Package postgres is the store backend of cluster mode: every durable
// record — holds, account states, incidents with their evidence and
// steps, the audit log, users and API tokens, trust entries and counter
// snapshots — in one PostgreSQL database that several mailbrake nodes
// share, through github.com/jackc/pgx/v5. It implements the same store
// interfaces as store/sqlite, the embedded default, and passes the same
// conformance suite (store/storetest). It owns the database's schema and
// its migrations; it does not decide anything about the records it keeps,
// and it never logs their contents or the password.
//
// # Connections
//
// Open takes a libpq connection string (a postgres:// URL or key=value
// pairs, parsed by pgxpool.ParseConfig) and, apart, the password, which
// the caller reads from a file; it replaces any password in the string
// and never appears in a log line or an error. TLS is configured in the
// connection string: sslmode=verify-full with sslrootcert=<CA file>
// (and sslcert/sslkey for a client certificate) for a database across a
// network. A Store holds one pgxpool pool (Options.MaxConns, by default
// the larger of 4 and the number of CPUs); a connection lost to a
// database restart fails the call that meets it and is replaced.
//
// Writes that read before they write run in one read-committed
// transaction and lock what they read, so two nodes never lose each
// other's update: recording a hold inserts the held record or, when the
// other protocol path (on this node or another) got there first, yields
// to it through the unique index of held queue IDs and merges into it
// under SELECT … FOR UPDATE; a finding joins the account's active
// incident the same way; a step or a state change locks its incident. A
// transaction PostgreSQL aborts to break a deadlock is run again.
//
// # Schema and upgrades
//
// The schema is versioned in the table schema_migrations (version,
// applied_at): the embedded files migrations/NNNN_name.sql each move the
// database one version up, and released files never change. Open takes
// an advisory lock (pg_advisory_xact_lock) and applies the pending
// migrations in order inside that one transaction, so nodes starting
// together migrate one after the other — the first does the work, the
// others find nothing to do — and a database is either fully migrated or
// untouched.
//
// The upgrade path: a newer mailbrake migrates the database on start.
// All nodes must run the same version or newer: a node refuses a schema
// newer than it knows, naming both versions, so upgrade the nodes one by
// one and do not start an older build against an upgraded database. The
// role mailbrake connects as must be allowed to create tables in the
// database (its owner, typically).
//
// Times are timestamptz, kept to the microsecond and returned in UTC;
// recipients, reasons and prints are text[] in their order; incident
// steps are jsonb; snapshot keys are bytea, ordered bytewise as Go orders
// strings.
//
// # Backups
//
// Backups are pg_dump's job (or the database's own replication and
// point-in-time recovery); unlike store/sqlite, this package has no
// Backup. A dump taken while nodes run is consistent.
package postgres
