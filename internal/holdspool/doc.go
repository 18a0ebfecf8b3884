// Package holdspool keeps, on the local disk, the hold records the store
// has not taken yet (PostgreSQL down, a full or locked database): one file
// per hold in a private directory, each written whole or not at all
// (a temporary file, fsync, rename, fsync of the directory), removed once
// the record is in the store. A node killed meanwhile finds them at its
// next start. It owns the directory and the file format; deciding when a
// hold is spooled, written or given up is ops.HoldWriter's job.
package holdspool
