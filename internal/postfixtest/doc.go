// Package postfixtest starts a private, throw-away Postfix for end-to-end
// tests: its own config, queue and data directories under a temporary
// directory, an smtpd on a free 127.0.0.1 port (and, on request, a
// submission smtpd with Cyrus SASL against a private sasldb), optional
// smtpd_milters and check_policy_service hooks pointing at the code under
// test, and a relayhost that is an in-process SMTP Sink recording every
// message Postfix delivers.
//
// It also drives the instance the way an admin would: Send submits mail
// with swaks and parses the transcript, Queue reads `postqueue -j`, and
// Command runs postsuper, postqueue or postcat against the instance's
// config directory.
//
// It does not own the code under test: the milter and policy servers are
// started by the test on the addresses it passes in Options.
//
// Running Postfix needs root and the Debian packages that
// scripts/install-test-deps.sh installs; Start skips the test otherwise,
// and in -short mode. The instance never does DNS and talks only to
// 127.0.0.1. Set POSTFIXTEST_KEEP=1 to keep the directory of a failed test.
// A test binary killed before its cleanup (go test -timeout) leaves its
// instance running: stop it with `postfix -c /tmp/postfixtest-*/etc stop`.
package postfixtest
