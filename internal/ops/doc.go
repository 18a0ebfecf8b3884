// Package ops is the one place where an admin request becomes a state
// change. The admin API (and so the CLI), and later the web UI, call the
// same ops.Service; every change it makes is written to the audit log with
// the actor taken from the request context.
package ops
