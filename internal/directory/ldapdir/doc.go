// Package ldapdir is the daemon's client for an LDAP directory that holds
// mail accounts: it finds an account's entry by a search filter and reads
// its stored password hash, locks and unlocks it, sets a new password and
// reads when the password last changed.
//
// A Client keeps one connection, bound as Config.BindDN, and serializes
// requests on it; a network error drops the connection and the next
// request (or one retry of the failed one) dials again. Every method takes
// a context whose cancellation or deadline aborts the request by closing
// the connection; Config.Timeout bounds each request too.
//
// Locking follows the password policy overlay of OpenLDAP (slapo-ppolicy,
// draft-behera-ldap-password-policy) by default: Lock writes
// pwdAccountLockedTime = 000001010000Z ("locked until an administrator
// unlocks it") and Unlock deletes it. slapd enforces the attribute only for
// entries under a policy with pwdLockout TRUE (checked with OpenLDAP
// 2.5.13); without one the account can still bind. Sites that lock with an
// attribute of their own set Config.LockAttr, LockValue and UnlockValue.
//
// SetPassword uses the Password Modify extended operation (RFC 3062), so
// the server hashes the new password with its own scheme and its password
// policy (history, quality, pwdChangedTime) applies. Only with
// Config.PasswordModifyFallback does a server that does not know the
// operation get a plain modify of the password attribute in cleartext,
// which is safe only when the server hashes cleartext writes (OpenLDAP:
// ppolicy with olcPPolicyHashCleartext).
//
// Passwords, of the bind DN and of accounts, never appear in errors or
// logs. The package does not verify passwords against hashes and does not
// decide anything: the engine and the playbook call it.
package ldapdir
