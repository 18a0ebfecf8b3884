package zimbratest

import (
	"encoding/json"
	"slices"
	"strings"
)

// This file models what ends a user's web, SOAP, IMAP and POP3 sessions
// (zm-mailbox commit 2b7f9787c69ed6b95ce37a415ba27c50f1091c72):
//
//   - a user's auth token carries the account's zimbraAuthTokenValidityValue
//     from when it was minted (AuthTokenProperties.java lines 70–73); every
//     request compares it with the account as the server sees it, unless
//     the global zimbraAuthTokenValidityValueEnabled is FALSE
//     (Account.checkAuthTokenValidityValue, Account.java lines 327–406), and
//     refuses a token of an account that is not active (AuthProvider.java
//     lines 938–966);
//   - an IMAP or POP3 session looks at the account's status, and only at
//     that, before each command (ImapHandler.checkAccountStatus lines
//     438–456, Pop3Handler lines 230–240), and closes when it is not active.
//
// "The account as the server sees it" is Server.view: its cached copy,
// fresh only on the account's home server.

// userToken is a user's (not an admin's) auth token.
type userToken struct {
	accountID string
	validity  int
}

// imapSession is an authenticated IMAP or POP3 connection to a server.
type imapSession struct {
	accountID string
	closed    bool
}

// IssueUserToken mints a web/SOAP auth token for the account, as its
// login would, carrying its current zimbraAuthTokenValidityValue. It
// reports false if there is no such account or it is not active.
func (s *Server) IssueUserToken(account string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.byName(account)
	if a == nil {
		return "", false
	}
	e := s.snapshot(a)
	if e.status != "active" {
		return "", false
	}
	tok := "0_user_" + randomHex(16)
	s.userTokens[tok] = &userToken{accountID: a.id, validity: e.validity}
	return tok, true
}

// UserTokenValid reports whether this server accepts the user token on a
// request now (AuthProvider.validateAuthTokenInternal, lines 938–966, with
// Account.checkAuthTokenValidityValue, lines 327–406).
func (s *Server) UserTokenValid(tok string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.userTokens[tok]
	if t == nil {
		return false
	}
	acct := s.view(t.accountID)
	if acct == nil {
		return false // "account … not found"
	}
	if s.validityCheckEnabled() && acct.validity != t.validity {
		// A token newer than the cached account: reload once per value
		// (bug 46287, lines 340–403); an older one is refused.
		if acct.validity > t.validity || acct.reloadedFor >= t.validity {
			return false
		}
		acct = s.reload(t.accountID)
		if acct == nil {
			return false
		}
		acct.reloadedFor = t.validity
		if acct.validity != t.validity {
			return false
		}
	}
	return acct.status == "active"
}

// OpenIMAPSession opens an authenticated IMAP (or POP3) session of the
// account on this server and returns its id. It reports false if there is
// no such account or it is not active (the login would fail).
func (s *Server) OpenIMAPSession(account string) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.byName(account)
	if a == nil || s.snapshot(a).status != "active" {
		return 0, false
	}
	s.imap = append(s.imap, &imapSession{accountID: a.id})
	return len(s.imap) - 1, true
}

// IMAPSessionAlive has the session's client send its next command and
// reports whether the server runs it: ImapHandler.checkAccountStatus
// (lines 438–456) reads the account through this server's cache and drops
// the connection when it is missing or not active. The validity value and
// the password are not looked at. A dropped session stays closed.
func (s *Server) IMAPSessionAlive(id int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id < 0 || id >= len(s.imap) || s.imap[id].closed {
		return false
	}
	sess := s.imap[id]
	if acct := s.view(sess.accountID); acct == nil || acct.status != "active" {
		sess.closed = true
		return false
	}
	return true
}

// SetGlobalConfig sets an attribute of the global config (no value unsets
// it). It starts with zimbraAuthTokenValidityValueEnabled TRUE, its
// globalConfigValue (zimbra-attrs.xml lines 5097–5101).
func (s *Server) SetGlobalConfig(name string, values ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(values) == 0 {
		delete(s.config, name)
		return
	}
	s.config[name] = slices.Clone(values)
}

// validityCheckEnabled is Config.isAuthTokenValidityValueEnabled
// (ZAttrConfig.java lines 4230–4232): only "TRUE" is true; unset is true.
func (s *Server) validityCheckEnabled() bool {
	v := s.config["zimbraAuthTokenValidityValueEnabled"]
	return len(v) == 0 || v[0] == "TRUE"
}

// getConfig is GetConfig.handle (lines 41–60 at zm-mailbox 2b7f9787c69e):
// the one attribute <a n="name"/> names, encoded as GetAllConfig.encodeConfig
// does (admin ToXML.encodeAttrs): nothing when unset, pd when the admin may
// not read it.
func (s *Server) getConfig(f map[string]json.RawMessage, req *request, call *Call) (map[string]any, *fault) {
	var a struct {
		N json.RawMessage `json:"n"`
	}
	raw := f["a"]
	if len(raw) > 0 && raw[0] == '[' {
		var l []json.RawMessage
		if json.Unmarshal(raw, &l) == nil && len(l) > 0 {
			raw = l[0]
		}
	}
	_ = json.Unmarshal(raw, &a)
	name := str(a.N)
	if name != "" {
		call.Args = append(call.Args, "a="+name)
	}
	if f := s.gate(call, req); f != nil {
		return nil, f
	}
	if name == "" {
		return nil, &fault{code: "service.INVALID_REQUEST", reason: "invalid request: missing required element: a", sender: true}
	}
	resp := map[string]any{"_jsns": "urn:zimbraAdmin"}
	var list []any
	for k, vals := range s.config {
		if !strings.EqualFold(k, name) {
			continue
		}
		denied := slices.ContainsFunc(s.opts.DeniedAttrs, func(d string) bool { return strings.EqualFold(d, k) })
		for _, v := range vals {
			if denied {
				list = append(list, map[string]any{"n": k, "pd": true})
			} else {
				list = append(list, map[string]any{"n": k, "_content": v})
			}
		}
	}
	if len(list) > 0 {
		resp["a"] = list
	}
	return resp, nil
}
