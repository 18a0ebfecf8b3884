// Package e2e holds mailbrake's end-to-end tests: the real mailbrake binary
// in front of a real, private Postfix (internal/postfixtest) that relays to
// an SMTP sink inside the test. They need root and the Debian packages from
// scripts/install-test-deps.sh, and skip without them.
package e2e
