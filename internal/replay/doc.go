// Package replay runs recorded submissions through the same engine the
// daemon uses (engine.New with the same configuration), with the clock
// driven by each event's own timestamp and no MTA side effects: holds are
// only reported, account state changes are applied to an in-memory view.
// It owns the JSON Lines input and output formats of `mailbrake replay`.
package replay
