// Package zimbra is a client for the Zimbra SOAP admin API
// (https://HOST:7071/service/admin/soap) in its JSON form, for the account
// response playbook: read an account, lock and unlock it, scramble its
// password, end its sessions, force a password change, and report the
// settings an attacker leaves behind to keep reading mail.
//
// The wire format follows zm-mailbox store/docs/soap-admin.txt and the
// handlers in store/src/java/com/zimbra/cs/service/admin: a JSON body (no
// Envelope) whose Body holds one XRequest element with "_jsns", and, after
// AuthRequest, a Header carrying the admin token in context.authToken.
// Faults arrive as HTTP 500 with Body.Fault.Detail.Error.Code; Client
// returns them as *Fault, and errors.Is matches them against ErrNoSuchAccount
// and the other Err values by code.
//
// Client authenticates lazily with AuthRequest, caches the token for the
// lifetime the server grants, and re-authenticates once and retries when a
// call fails with service.AUTH_EXPIRED or service.AUTH_REQUIRED (Zimbra
// checks the token before it dispatches the request, so the retried call
// was not carried out the first time).
//
// Zimbra's ZimbraInvalidLoginFilter answers every request from a client
// IP with HTTP 503, not a SOAP fault, for 15 to 20 minutes once that IP
// has had more than zimbraInvalidLoginFilterMaxFailedLogin (default 10)
// failed logins, and never forgets a failure before that. Client returns
// such a 503 as ErrLoginSuspended, naming the filter and the time, and
// sends no AuthRequest for 20 minutes; after a failed AuthRequest it
// sends none for 5 minutes.
//
// Attributes: GetAccount asks for a list of attributes. An attribute the
// admin has no right to read comes back without its value ({"n":…,
// "pd":true}); Account keeps those in DeniedAttrs, never as unset. An
// attribute the server's version lacks makes Zimbra refuse the whole
// request (service.INVALID_REQUEST); GetAccount asks again without it and
// remembers that the server lacks it.
//
// Passwords: PasswordPolicy reads an account's effective password policy
// and PasswordPolicy.Check renders Zimbra's checkPasswordStrength;
// GeneratePassword makes one random password that several policies (of
// several systems) accept. SetPassword enforces the policy only for a
// delegated admin without the setAccountPassword right; its refusals
// match ErrPasswordRejected, which retrying cannot cure.
//
// Sessions: Zimbra has no admin call that revokes another user's tokens.
// EndSessions raises zimbraAuthTokenValidityValue, which every web and
// SOAP token carries and Zimbra compares on each request (unless the
// global zimbraAuthTokenValidityValueEnabled is FALSE, which it reads and
// warns about), and flushes the account from the caches of every server.
// Open IMAP and POP3 sessions look only at the account status, before each
// command: they end only if the account is locked. The SessionsReport says
// exactly which of these happened.
//
// Caches: every mailbox server caches accounts for up to 15 minutes and
// acts on its copy (token checks, IMAP and POP3 status checks).
// FlushAccountCache lists the mailbox servers (GetAllServersRequest) and
// sends each, at its own admin endpoint (zimbraServiceHostname and
// zimbraAdminPort, over https with the same CA and token), a
// FlushCacheRequest for the account by zimbraId, the key a cache finds it
// by exactly; the report says which servers answered. Zimbra's own
// allServers=1 only logs a server's failure and answers success, so it is
// the fallback when the servers cannot be listed or none answers, and the
// report says that failures are then unknown. CAFile must therefore cover
// every mailbox server's certificate.
//
// Persistence: forwarding (zimbraPrefMailForwardingAddress, set by the
// user, zimbraMailForwardingAddress, set by admins, and a forwarding
// address waiting for verification), filters (zimbraMailSieveScript,
// zimbraMailOutgoingSieveScript), the default identity's From/Reply-To,
// the password recovery address and its status, and the two-factor state
// are account attributes, read with GetAccount. Further identities are
// LDAP children of the account that no admin call returns; Persistence
// reads them the way zmprov does (SoapProvisioning.getAllIdentities): the
// account-namespace GetIdentitiesRequest sent to the admin endpoint with
// the target account in the header context. Rights granted on the account
// (GetGrantsRequest), shared folders (GetShareInfoRequest) and external
// data sources (GetDataSourcesRequest) are read too. Each of these calls
// needs rights a delegated admin may lack (viewGrants, adminLoginAs), so
// each failure is reported in its own field of Persistence rather than
// failing the whole report, and an attribute the admin may not read is
// reported as such, never as unset. Zimbra exposes no per-attribute change
// time; zimbraPasswordModifiedTime is the one timestamp reported. Sieve
// scripts are reported by presence, size and SHA-256, never by content;
// data sources by name, type and host, never a password.
//
// The admin password is read from a file, sent only in AuthRequest, and
// never logged or put in an error; SetPassword's new password likewise.
//
// It does not decide anything: which steps run, and in what order, is the
// playbook's business. Package zimbratest is a TLS test server that
// answers the same calls as a real Zimbra does.
package zimbra
