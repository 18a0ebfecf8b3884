// Package dovecot is a client of Dovecot's doveadm HTTP API, for the
// playbook steps that end an account's sessions (Kick) and make Dovecot
// forget cached credentials after a passdb change (AuthCacheFlush). Who
// lists an account's sessions.
//
// The wire format is the one of Dovecot 2.3's doveadm HTTP server
// (src/doveadm/client-connection-http.c), checked against Dovecot 2.3.19:
// one POST to /doveadm/v1 per command, authenticated with
// "Authorization: X-Dovecot-API base64(doveadm_api_key)", whose body is
// [["command",{parameters},"tag"]] and whose answer is
// [["doveadmResponse",[rows],"tag"]] or
// [["error",{"type":"exitCode","exitCode":N},"tag"]]. Command and
// parameter names are camelCase forms of the CLI's (`doveadm auth cache
// flush USER` is authCacheFlush with the parameter "user").
//
// The API key is read from a file and never logged, printed or put in an
// error. Accounts are passed as doveadm user masks, so a name holding the
// mask wildcards '*' or '?' is refused rather than widened to other users.
//
// Package dovecot does not change passwords or lock accounts: Dovecot has
// no command for that, and the passdb is written directly (for a
// passwd-file by internal/directory/passwdfile). Nor does it decide when a
// step runs; that is the playbook's job.
package dovecot
