// Package dovecottest starts a private, throw-away Dovecot for tests: its
// own dovecot.conf, base_dir, state_dir, log and mail under a temporary
// directory, IMAP (no TLS, plaintext LOGIN allowed) and the doveadm HTTP API
// on free 127.0.0.1 ports, a passwd-file passdb holding Options.Users and a
// static userdb with maildirs under the temporary directory. The
// authentication cache is on, as on most production servers, although
// Dovecot 2.3 does not cache a passwd-file with a fixed path (it holds the
// file in memory and re-reads it when it changes).
//
// It also carries a tiny IMAP client (Login, Noop, Logout) that reports a
// server-side disconnect, such as a doveadm kick, as ErrDisconnected.
//
// It does not own the code under test: the doveadm API client lives in
// internal/connector/dovecot and the passwd-file writer in
// internal/directory/passwdfile.
//
// The system Dovecot is neither used nor touched: master runs in the
// foreground (dovecot -c FILE -F) as the test's child, in its own process
// group, with its stdio on a file (a daemon that inherits the test's stderr
// keeps `go test`'s pipe open, REFERENCE §8). Running it needs root and the
// Debian packages dovecot-core and dovecot-imapd that
// scripts/install-test-deps.sh installs; Start skips the test otherwise, and
// in -short mode. Set DOVECOTTEST_KEEP=1 to keep the directory of a failed
// test. A test binary killed before its cleanup leaves its instance running:
// its processes are titled dovecottest/…; stop one with
// `doveadm -c /tmp/dovecottest-*/dovecot.conf stop`.
package dovecottest
