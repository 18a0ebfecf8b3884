// Package pwhash verifies a candidate plaintext against a stored password
// hash, as found in LDAP userPassword values (OpenLDAP, with its pw-sha2,
// pw-pbkdf2 and argon2 modules) and in Dovecot passdbs. Mailbrake uses it to
// notice a user mailing out their own password: each token of a message is
// a candidate, the user's stored hash is the reference.
//
// A stored string is parsed once into a Hash (Parse, or Limits.Parse with
// site caps); Hash.Verify then answers "is this candidate the password?"
// with a constant-time comparison. Hash.Cost tells the caller whether a
// verification takes microseconds (salted and unsalted digests, PLAIN),
// so it can run inline, or milliseconds to a second (the crypt family,
// bcrypt, argon2, PBKDF2, yescrypt), so it belongs in a bounded background
// pool with a time budget.
//
// Supported: {SSHA} {SSHA256} {SSHA384} {SSHA512} {SMD5}, {SHA} {SHA1}
// {SHA256} {SHA384} {SHA512} {MD5} {LDAP-MD5} {PLAIN-MD5} (base64 or, as
// Dovecot guesses, hex; Dovecot's .HEX/.B64 suffixes), {PLAIN} {CLEARTEXT}
// {CLEAR}, {CRYPT} and bare crypt strings with $1$ $5$ $6$ (rounds=) $2a$
// $2b$ $2y$ $y$ $argon2i$ $argon2id$ $argon2d$ $pbkdf2[-sha256|-sha512]$,
// Dovecot's {MD5-CRYPT} {SHA256-CRYPT} {SHA512-CRYPT} {BLF-CRYPT}
// {ARGON2I} {ARGON2ID} and {PBKDF2}$1$salt$rounds$hex (PBKDF2-HMAC-SHA1),
// OpenLDAP's {ARGON2} and {PBKDF2[-SHA1|-SHA256|-SHA512]}iter$salt$dk
// (adapted base64). Scheme prefixes are case-insensitive.
//
// Safety: Parse never panics and refuses, with ErrTooCostly, a stored hash
// whose parameters (argon2 memory, time and lanes, bcrypt cost, SHA-crypt
// rounds, PBKDF2 iterations, yescrypt memory) exceed Limits, so one hostile
// or mistaken directory entry cannot stall or exhaust the daemon. Neither
// errors nor a Hash's printed form ever contain the stored hash, its salt or
// a candidate; a scheme name is the most an error repeats.
//
// Package pwhash does not fetch hashes (the LDAP and Dovecot connectors do),
// choose candidates, cache results, schedule slow verifications, or create
// hashes: it only ever compares.
package pwhash
