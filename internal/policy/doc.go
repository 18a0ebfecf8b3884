// Package policy implements the Postfix SMTP access policy delegation
// protocol (Postfix SMTPD_POLICY_README, "Protocol description"): the
// request that check_policy_service sends, the action reply, a server that
// answers many requests per connection, and a client for tests and the
// load generator.
//
// It owns the wire format and nothing else:
//
//   - ReadRequest parses one request ("name=value" lines ended by an empty
//     line) into a typed Request under Limits (line length, attribute
//     count, request size), rejecting NUL, control characters and invalid
//     UTF-8, and decoding the xtext of the ccert_* attributes.
//     Request.Encode writes a request back in Postfix's attribute order.
//   - Response holds one access(5) action. The constructors (Dunno, OK,
//     Hold, Defer, DeferIfPermit, Reject, Reply, Prepend, Warn) keep the
//     text on one bounded line of printable ASCII.
//   - Server reads requests under an idle deadline, calls Handler.Check
//     and writes "action=...\n\n". When the handler fails or panics it
//     sends nothing and closes that connection, as the README requires, so
//     Postfix applies smtpd_policy_service_default_action. Malformed input
//     closes only the offending connection.
//   - Client sends requests over one persistent connection.
//
// It does not decide anything: which action a request gets is the
// Handler's business (the daemon adapts it to the engine). It imports no
// other mailbrake package.
package policy
