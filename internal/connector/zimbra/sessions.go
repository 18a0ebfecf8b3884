package zimbra

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// AttrAuthTokenValidityValueEnabled is the global config attribute that
// turns the validity value check on (zimbra-attrs.xml lines 5097–5101 at
// zm-mailbox 2b7f9787c69e; TRUE unless set otherwise).
const AttrAuthTokenValidityValueEnabled = "zimbraAuthTokenValidityValueEnabled"

// SessionsReport says what EndSessions ended, and what it could not.
//
// Zimbra has no admin call that ends another user's sessions. Every web
// and SOAP auth token carries the account's zimbraAuthTokenValidityValue
// from when it was minted, and each request compares it with the account
// (Account.checkAuthTokenValidityValue, lines 327–406 at zm-mailbox
// 2b7f9787c69e) unless the global zimbraAuthTokenValidityValueEnabled is
// FALSE: raising the value revokes them. An open IMAP or POP3 session
// ignores the value: it checks only that the account is active, before
// each command (ImapHandler.checkAccountStatus lines 438–456, Pop3Handler
// lines 230–240), so it ends at its next command only if the account is
// locked. Each server acts on its cached copy of the account (up to 15
// minutes old) unless that is flushed.
type SessionsReport struct {
	// Account is the account's name.
	Account string
	// OldValidity and NewValidity are zimbraAuthTokenValidityValue before
	// and after; -1 is unset.
	OldValidity, NewValidity int
	// ValidityCheck is whether zimbraAuthTokenValidityValueEnabled is on:
	// when it is FALSE, raising the value revoked no token.
	// ValidityCheckErr, when set, is why it could not be read; whether
	// the tokens were revoked is then unknown.
	ValidityCheck    bool
	ValidityCheckErr error
	// Status is zimbraAccountStatus when EndSessions ran.
	Status string
	// Flush is the account cache flush on the mailbox servers.
	Flush *FlushReport
}

// TokensRevoked reports whether raising the validity value revoked the
// account's web and SOAP tokens (on the servers whose cache was flushed).
func (r *SessionsReport) TokensRevoked() bool { return r.ValidityCheck && r.ValidityCheckErr == nil }

// IMAPEnds reports whether open IMAP and POP3 sessions end (at their next
// command): only when the account is not active.
func (r *SessionsReport) IMAPEnds() bool { return r.Status != StatusActive }

func validityWord(v int) string {
	if v < 0 {
		return "unset"
	}
	return strconv.Itoa(v)
}

// String says in a few clauses what ended, e.g. "web and SOAP tokens
// revoked (validity 4→5); account locked: IMAP/POP sessions end at their
// next command; caches flushed by id on mbox1 (ok), mbox2 (failed: …)".
func (r *SessionsReport) String() string {
	change := validityWord(r.OldValidity) + "→" + validityWord(r.NewValidity)
	var s string
	switch {
	case r.ValidityCheckErr != nil:
		s = "zimbraAuthTokenValidityValue raised (" + change + "), but whether that revoked the web and SOAP tokens is unknown: " +
			AttrAuthTokenValidityValueEnabled + " could not be read (" + r.ValidityCheckErr.Error() + ")"
	case !r.ValidityCheck:
		s = "WARNING: " + AttrAuthTokenValidityValueEnabled + " is FALSE, so raising zimbraAuthTokenValidityValue (" + change +
			") revoked no web or SOAP token"
	default:
		s = "web and SOAP tokens revoked (validity " + change + ")"
	}
	if r.IMAPEnds() {
		s += "; account " + r.Status + ": IMAP/POP sessions end at their next command"
	} else {
		s += "; account active: open IMAP/POP sessions are NOT ended (Zimbra checks only the account status, at each command; lock the account to end them)"
	}
	if r.Flush != nil {
		s += "; " + r.Flush.String()
		if len(r.Flush.Failed()) > 0 || r.Flush.AllServers {
			s += "; a server whose cache was not flushed acts on its copy of the account (old tokens, old status) for up to 15 minutes"
		}
	}
	return s
}

type getConfigRequest struct {
	JSNS string `json:"_jsns"`
	A    struct {
		N string `json:"n"`
	} `json:"a"`
}

// validityCheckEnabled reads zimbraAuthTokenValidityValueEnabled
// (GetConfigRequest, GetConfig.java lines 41–60): true unless it is set to
// anything but TRUE (ZAttrConfig.isAuthTokenValidityValueEnabled, lines
// 4230–4232, and Entry.getBooleanAttr).
func (c *Client) validityCheckEnabled(ctx context.Context) (bool, error) {
	req := getConfigRequest{JSNS: nsAdmin}
	req.A.N = AttrAuthTokenValidityValueEnabled
	var raw json.RawMessage
	if err := c.call(ctx, "GetConfigRequest", req, "", "", "", &raw); err != nil {
		return false, fmt.Errorf("zimbra: reading %s: %w", AttrAuthTokenValidityValueEnabled, err)
	}
	var r entryJSON
	if err := json.Unmarshal(raw, &r); err != nil {
		return false, fmt.Errorf("zimbra: reading %s: %w: %v", AttrAuthTokenValidityValueEnabled, errMalformed, err)
	}
	for _, at := range r.A {
		if string(at.N) != AttrAuthTokenValidityValueEnabled {
			continue
		}
		if pd := string(at.PD); pd == "true" || pd == "1" {
			return false, errors.New("no right to read it")
		}
		return string(at.Content) == "TRUE", nil
	}
	return true, nil
}

// EndSessions ends what Zimbra lets an admin end of the account's
// sessions and reports it: it reads the account's status and
// zimbraAuthTokenValidityValue and the global
// zimbraAuthTokenValidityValueEnabled, raises the validity value by one
// as LdapProvisioning.setPassword does (which revokes every web and SOAP
// token when the check is on), and flushes the account from the cache of
// every mailbox server (FlushAccountCache). IMAP and POP3 sessions end
// only if the account is not active: lock it first. It returns an error
// when the account cannot be read or modified, or when no server's cache
// could be flushed; the report then still says what was done.
func (c *Client) EndSessions(ctx context.Context, name string) (*SessionsReport, error) {
	a, err := c.accountID(ctx, name, AttrID, AttrAuthTokenValidityValue, AttrAccountStatus)
	if err != nil {
		return nil, err
	}
	r := &SessionsReport{Account: name, OldValidity: a.AuthTokenValidityValue(), Status: a.Status()}
	if a.Name != "" {
		r.Account = a.Name
	}
	r.NewValidity = nextValidityValue(r.OldValidity)
	r.ValidityCheck, r.ValidityCheckErr = c.validityCheckEnabled(ctx)
	if ctx.Err() != nil {
		return nil, r.ValidityCheckErr
	}
	if err := c.modify(ctx, name, a.ID, attr{N: AttrAuthTokenValidityValue, Content: strconv.Itoa(r.NewValidity)}); err != nil {
		return nil, fmt.Errorf("zimbra: raising %s of %s: %w", AttrAuthTokenValidityValue, name, err)
	}
	r.Flush = c.flushByID(ctx, name, a.ID)
	if err := ctx.Err(); err != nil {
		return r, fmt.Errorf("zimbra: ending sessions of %s: %w (%s)", name, err, r)
	}
	if r.Flush.AllServers && r.Flush.AllServersErr != nil {
		return r, fmt.Errorf("zimbra: ending sessions of %s: no server's cache flushed: %s", name, r)
	}
	return r, nil
}
