// Package milter is mailbrake's milter glue: it speaks the Sendmail/Postfix
// milter protocol (version 6, through github.com/d--j/go-milter's low-level
// Server and Milter interface), collects one SMTP transaction into a
// [Message], hands it to a [Handler] at end of message and turns the
// handler's [Decision] into the milter reply: accept, quarantine (Postfix
// moves the message to its hold queue), temporary failure, rejection or
// discard, optionally with added header fields.
//
// The package owns:
//
//   - protocol negotiation: the actions and protocol flags it asks for
//     (no-reply flags for every stage where it always continues, skipping
//     unused events) and the macros it requests at each stage;
//   - per-connection and per-message state, including several messages on
//     one milter connection separated by RSET/Abort;
//   - the bounds on what is collected (recipients, header fields, body
//     preview), so a hostile message cannot make the daemon grow without
//     limit;
//   - a packet guard in front of go-milter that drops a connection sending
//     malformed, truncated or oversized packets before the library sees
//     them (some of them would otherwise crash the process, see guard.go);
//   - the handler's context (cancelled when the MTA connection dies or the
//     server is shut down hard), progress packets while a slow handler
//     runs, and recovery from a panicking handler.
//
// It does not own the decision: it never imports the engine or any other
// mailbrake package. The adapter in internal/daemon implements [Handler].
// It does not manage the hold queue either; internal/quarantine does.
//
// Message bodies, header values and secrets are never logged.
package milter
