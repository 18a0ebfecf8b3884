// Package ldaptest starts a private, throw-away OpenLDAP slapd for tests:
// a slapd.conf it generates under a temporary directory, an mdb database
// for the suffix dc=example,dc=test with a root DN and a random password,
// and a listener on a free 127.0.0.1 port. The system slapd and its
// configuration are never touched.
//
// The instance behaves like a directory a mail site runs: the core,
// cosine, inetorgperson and nis schemas; the ppolicy overlay with a
// default policy (cn=default,ou=policies) that enforces
// pwdAccountLockedTime and hashes cleartext userPassword writes; the
// pw-sha2 module, when installed, so that {SSHA512} values verify; and
// {CRYPT} values verified by the system crypt(3), which on Debian 12
// knows $6$ and $y$.
//
// Tests seed it with AddUser (a stored hash, not a password), check
// credentials with Bind and read entries, operational attributes included,
// with Entry. SSHA and SSHA512 compute stored values with a random salt.
//
// It does not own the code under test: LDAP clients connect to URL as any
// other client would.
//
// Running slapd needs root and the Debian slapd package that
// scripts/install-test-deps.sh installs; Start skips the test otherwise,
// and in -short mode. Set LDAPTEST_KEEP=1 to keep the directory of a
// failed test, with its slapd.conf and the slapd log (-d stats). A test
// binary killed before its cleanup (go test -timeout) leaves its slapd
// running: stop it with `kill $(cat /tmp/ldaptest-*/slapd.pid)`.
package ldaptest
