// Package loadgen is mailbrake's load generator for its two protocol
// paths, behind `mailbrake loadgen policy|milter`. RunPolicy plays Postfix
// smtpd processes asking a policy delegation server (SMTPD_POLICY_README);
// RunMilter plays Postfix's milter client. Both send authenticated
// submissions from a Zipf-distributed set of users, so a few heavy users
// reach per-account limits and most never do, as in the bench harness
// (/work/shared/bench) whose tables their Markdown rows fit.
//
// What is sent follows a capture of Postfix 3.7.11 (testdata/):
//   - policy: every attribute Postfix 3.7 sends, in its order; one
//     instance per message; queue_id empty at the first RCPT
//     (smtpd_delay_open_until_valid_rcpt); recipient_count 0 at RCPT and
//     the number of recipients at END-OF-MESSAGE.
//   - milter: protocol version 6, Postfix's default macro lists; connect,
//     HELO with TLS macros, MAIL with {auth_type} and {auth_authen}, RCPTs,
//     DATA, the header fields a mail client writes (with X-Mailer), a
//     5–20 KiB CRLF body from a pool generated before the run, and
//     end-of-message. The queue ID macro i is defined from the second RCPT
//     on, as Postfix defines it; a milter must not expect it at MAIL.
//
// Outcomes are counted as Postfix would act on them: the policy action
// keyword (DUNNO, DEFER_IF_PERMIT, HOLD…) and, for the milter, ACCEPT,
// QUARANTINE (accepted with a quarantine modification: Postfix holds it),
// or the stage and action that ended the message, such as
// TEMPFAIL(451)@eom or REJECT@rcpt.
//
// Safety: targets outside 127.0.0.0/8, ::1 and unix sockets are refused
// unless AllowRemote is set (a host name must resolve to loopback only,
// and the checked address is the one dialled). Warm-up plus duration is at
// most MaxDuration, and a watchdog closes every connection shortly after
// the end, so a run always stops by itself. Client addresses in requests
// come from the documentation prefixes and are only text.
//
// Measurement: connections are dialled one after another before the clock
// starts; latencies go into a log-linear histogram (percentiles within
// 0.4 %); an open-loop Rate (policy) measures from the intended send time,
// so a slow server cannot hide its queueing.
//
// loadgen speaks the protocols only as a client. It does not import the
// daemon's packages and does not start, configure or inspect the server
// it loads.
package loadgen
