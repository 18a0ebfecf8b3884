// Package zimbratest runs an in-process stand-in for the Zimbra SOAP
// admin endpoint (https://HOST:7071/service/admin/soap) for tests: an
// httptest TLS server that speaks the JSON form of the calls the zimbra
// connector makes and answers as zm-mailbox does (soap-admin.txt and the
// admin handlers), over an in-memory account store.
//
// It implements AuthRequest (admin credentials, token with lifetime),
// GetAccountRequest (by name or id, the attrs filter honoured, COS values
// applied, secrets as "VALUE-BLOCKED", attributes the admin may not read
// as {"n","pd":true} and attributes an older version lacks refused with
// service.INVALID_REQUEST: Options.DeniedAttrs and UnknownAttrs),
// ModifyAccountRequest (by id; an empty value removes an attribute; a few
// attributes are validated as Zimbra's AttributeManager would),
// SetPasswordRequest (LdapProvisioning.setPassword: a dry run against
// the account's password policy, COS values inherited; the policy enforced
// only when Options.MissingRights withholds setAccountPassword, else its
// violation returned as <message>; zimbraPasswordMustChange cleared,
// zimbraAuthTokenValidityValue raised from -1 when unset,
// zimbraPasswordModifiedTime and the history written; see password.go),
// FlushCacheRequest (type=account by id or name on this server's own
// account cache, allServers=1 repeated on the other servers, their
// failures hidden), GetAllServersRequest, GetConfigRequest,
// GetGrantsRequest, GetShareInfoRequest, GetDataSourcesRequest
// (persistence.go; AddGrant, AddShare, AddDataSource; Options.MissingRights
// withholds viewGrants or adminLoginAs) and the account-service
// GetIdentitiesRequest sent on an account's behalf (its DEFAULT identity
// built as Provisioning.getDefaultIdentity does). Anything else is a
// service.UNKNOWN_DOCUMENT fault; a missing or unknown token is
// service.AUTH_REQUIRED and an expired one service.AUTH_EXPIRED.
//
// A deployment has several mailbox servers (Options.Peers), each with its
// own endpoint and account cache: a server other than the account's home
// acts on its cached copy of the account for up to 15 minutes unless
// flushed (SeenAccount); Stop takes a server down. User sessions are
// modelled as Zimbra ends them (sessions.go): web/SOAP tokens carrying the
// validity value (IssueUserToken, UserTokenValid) unless the global
// zimbraAuthTokenValidityValueEnabled is FALSE (SetGlobalConfig,
// GetConfigRequest), and IMAP/POP sessions that only check the account
// status at their next command (OpenIMAPSession, IMAPSessionAlive).
//
// Each server runs ZimbraInvalidLoginFilter (filter.go): past
// Options.InvalidLoginFilterMaxFailedLogin failed AuthRequests from an IP
// it answers that IP HTTP 503 for 15 to 20 minutes.
//
// Calls records every request in order (name and key fields, never a
// password: only that one was sent), so tests can assert the exact
// sequence a step produced. ExpireTokens and FailNext inject the failures
// a real server produces.
//
// It does not import the connector: it is an independent rendering of
// the wire format, so the two check each other.
package zimbratest
