// Package passwdfile reads and changes a Dovecot passwd-file passdb: the
// stored password of an account, and the extra fields that lock it.
//
// The format is Dovecot's (src/auth/db-passwd-file.c, checked against
// Dovecot 2.3.19): one user:password:uid:gid:gecos:home:shell:extra_fields
// line per account, where every field after the password may be missing;
// blank lines and lines starting with '#' or ':' are skipped; a CR before
// the LF is dropped; the extra fields are everything after the seventh
// colon (they may hold colons), split on spaces into key=value pairs; when
// a user appears twice the first line wins. A password without {SCHEME}
// uses the passdb's default scheme, and libpam-pwdfile's "hash[34]" form
// means {PLAIN-MD5} (Entry.Stored converts it like Dovecot).
//
// Changes are atomic: the file is rewritten to a temporary file in the
// same directory with the old file's mode and owner, synced and renamed
// over it, and only the changed lines differ. Dovecot re-reads a
// passwd-file when its mtime (in whole seconds) or size changes, so a
// rewrite of the same size within the second of the previous one gets an
// mtime one second later; otherwise Dovecot would go on using the old
// password.
//
// Lock adds the extra field "fail=y" and Unlock removes it. Checked against
// Dovecot 2.3.19: "fail" makes the passdb lookup fail for every service,
// including auth-only clients such as Postfix's smtpd (SMTP AUTH through
// Dovecot SASL), whereas "nologin" is answered OK to those clients and only
// refused by Dovecot's own login processes, and "deny=yes" means nothing as
// an extra field (deny is a setting of a whole passdb).
//
// Dovecot's auth process looks at a passwd-file at most once per second,
// so every change returns only once the clock has entered the next second
// (see Update). Neither a password change nor a lock ends existing
// sessions: follow them with the connector's AuthCacheFlush and Kick
// (internal/connector/dovecot). Dovecot 2.3.19 does not put a passwd-file
// with a fixed path in its auth cache, but a flush costs little and keeps
// the playbook the same for every passdb.
//
// Package passwdfile does not verify passwords against stored hashes,
// generate hashes, or coordinate with other programs that edit the file
// (a change made between our read and our rename is detected and the
// update retried, but an editor that writes in place may still lose
// against us).
package passwdfile
