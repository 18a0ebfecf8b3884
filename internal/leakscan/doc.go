// Package leakscan turns a raw RFC 5322 message, as a milter receives it,
// into the strings that might be the sender's own password, so that a
// caller can test each one against the sender's password hash and catch a
// user mailing their password (to a phisher's reply address, a help desk
// or a colleague).
//
// The package owns:
//
//   - walking the MIME tree: every text part (text/plain, text/html reduced
//     to text, text attachments, forwarded message/rfc822 parts) after
//     Content-Transfer-Encoding decoding and charset conversion, and the
//     RFC 2047 Subject; a part it cannot decode is scanned as raw bytes
//     rather than failing the message;
//   - the bounds on that walk (decoded bytes, MIME depth, part count), so a
//     hostile message costs a bounded amount of work;
//   - tokenising, the "password: X" label patterns in several languages,
//     deduplication, filtering and ordering by likelihood (see [Extract]);
//   - masking a matched secret out of preview text ([Mask]).
//
// It does not know password hashes, accounts, the directory or the engine,
// and it decides nothing: callers hash, compare and report. It never logs
// (it has no logger) and never panics on any input. Candidates are secrets
// in waiting: callers must not log them, and may zero Candidate.Value once
// they have been compared.
package leakscan
