// Package playbook runs account response: an incident's playbook is an
// ordered list of steps (restrict sending, hold queued mail, lock the
// login, scramble the password, end sessions, force a password change,
// check for attacker persistence, notify), each carried out by the
// connectors that support it (Zimbra, LDAP, Dovecot, an external command,
// mailbrake itself). Steps are idempotent and retried with backoff; each
// outcome is recorded on the incident and audited. Steps before a
// playbook's confirmation point run at once; the rest wait until an admin
// confirms the incident. In dry-run mode nothing is changed and every
// step is recorded as dry-run.
//
// The word "action" is Postfix's (action=HOLD); these are steps.
//
// The package does not decide when an incident opens (internal/ops does,
// from findings and admin requests) and does not speak any directory's
// protocol (internal/connector/... and internal/directory/... do). A new
// password made by scramble-password exists only in memory for the
// duration of the step: it is never stored, logged or returned.
package playbook
