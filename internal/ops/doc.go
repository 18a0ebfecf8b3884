// Package ops is the one place where an admin request becomes a state
// change. The admin API (and so the CLI), and later the web UI, call the
// same ops.Service; every change it makes is written to the audit log with
// the actor taken from the request context. It also says what the admin
// reads beside the records: the cluster's nodes by their heartbeat, and
// whether the records store takes writes (Records), in words when a
// request fails because it does not (Explain).
package ops
