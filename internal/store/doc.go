// Package store defines the persistence interfaces mailbrake uses, grouped by
// use: Quarantine (the index of held messages), Audit (who did what), and
// Snapshots (counter state kept across restarts). Backends live in
// sub-packages (store/sqlite is the embedded default, store/postgres the
// shared database of cluster mode). The package owns the
// record types and their stable state names; it does not decide anything.
package store
