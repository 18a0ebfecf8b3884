// Package storetest is the one conformance suite every store backend runs
// (store/sqlite and store/postgres). A backend's test calls Run with a
// function that opens a fresh, empty backend; Run then checks every behaviour
// the store interfaces document, against the real backend.
//
// Where store.go is silent, the suite fixes one convention so that backends
// agree; each is checked by a named subtest:
//
//   - PutHold ignores h.ID and does not modify *h; an empty State means
//     store.HoldHeld, an unknown State is an error, and a zero StateAt is set
//     to HeldAt.
//   - Reasons never hold duplicates, also within a single PutHold; the first
//     occurrence keeps its place.
//   - A merge fills only empty fields, so Path and HeldAt stay those of the
//     first record, and it never touches State, StateAt or StateBy.
//   - A hold merges only into the held record of the same Node and
//     QueueID: two MTAs of a cluster can give two messages one queue ID.
//   - HoldByQueueID("") is ErrNotFound; an empty QueueID never merges.
//   - Ties in "newest first" are broken by ID, the higher (later) first.
//   - ListAudit: Since is inclusive; Limit 0 means the backend default (100),
//     as for holds.
//   - SetHoldState to an unknown state is an error that is neither
//     ErrNotFound nor ErrConflict, and changes nothing.
//   - Times come back in UTC, equal to what was stored to within a
//     millisecond.
//   - SaveSnapshots: a nil value deletes its key (deleting a missing key is
//     not an error); an empty non-nil value is kept and loads as present.
//
// The package owns the suite only; it holds no backend and no fixtures
// beyond what each subtest writes.
package storetest
