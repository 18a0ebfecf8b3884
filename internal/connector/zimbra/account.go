package zimbra

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Account attributes (zimbra-attrs.xml) the connector reads or writes.
const (
	AttrID                            = "zimbraId"
	AttrAccountStatus                 = "zimbraAccountStatus"
	AttrAuthTokenValidityValue        = "zimbraAuthTokenValidityValue"
	AttrPasswordModifiedTime          = "zimbraPasswordModifiedTime"
	AttrPasswordMustChange            = "zimbraPasswordMustChange"
	AttrPrefMailForwardingAddress     = "zimbraPrefMailForwardingAddress"
	AttrMailForwardingAddress         = "zimbraMailForwardingAddress"
	AttrPrefMailLocalDeliveryDisabled = "zimbraPrefMailLocalDeliveryDisabled"
	AttrMailSieveScript               = "zimbraMailSieveScript"
	AttrMailOutgoingSieveScript       = "zimbraMailOutgoingSieveScript"
	AttrPrefIdentityName              = "zimbraPrefIdentityName"
	AttrPrefIdentityID                = "zimbraPrefIdentityId"
	AttrPrefFromAddress               = "zimbraPrefFromAddress"
	AttrPrefFromDisplay               = "zimbraPrefFromDisplay"
	AttrPrefReplyToEnabled            = "zimbraPrefReplyToEnabled"
	AttrPrefReplyToAddress            = "zimbraPrefReplyToAddress"
	AttrPrefReplyToDisplay            = "zimbraPrefReplyToDisplay"
	AttrMailHost                      = "zimbraMailHost"
	AttrLastLogonTimestamp            = "zimbraLastLogonTimestamp"

	AttrPrefPasswordRecoveryAddress       = "zimbraPrefPasswordRecoveryAddress"       // since 8.8.9
	AttrPrefPasswordRecoveryAddressStatus = "zimbraPrefPasswordRecoveryAddressStatus" // since 8.8.9

	AttrMailAlias                          = "zimbraMailAlias"
	AttrMailCanonicalAddress               = "zimbraMailCanonicalAddress"
	AttrFeatureAddressUnderVerification    = "zimbraFeatureAddressUnderVerification"    // since 8.8.5
	AttrTwoFactorAuthEnabled               = "zimbraTwoFactorAuthEnabled"               // since 8.7.0
	AttrFeatureTwoFactorAuthRequired       = "zimbraFeatureTwoFactorAuthRequired"       // since 8.7.0
	AttrFeatureAppSpecificPasswordsEnabled = "zimbraFeatureAppSpecificPasswordsEnabled" // since 8.7.0
	AttrAppSpecificPassword                = "zimbraAppSpecificPassword"                // since 8.7.0
	AttrTwoFactorAuthTrustedDevices        = "zimbraTwoFactorAuthTrustedDevices"        // since 8.7.0
	AttrDataSourceHost                     = "zimbraDataSourceHost"
	AttrDataSourceEnabled                  = "zimbraDataSourceEnabled"
)

// Values of zimbraAccountStatus. StatusLocked refuses logins but still
// delivers mail; "closed" would also bounce incoming mail, so it is not
// offered.
const (
	StatusActive = "active"
	StatusLocked = "locked"
)

// DefaultAttrs are the attributes GetAccount asks for when called without
// a list: what the playbook steps and Persistence read.
var DefaultAttrs = []string{
	AttrID, AttrAccountStatus, AttrAuthTokenValidityValue,
	AttrPasswordModifiedTime, AttrPasswordMustChange, AttrMailHost, AttrLastLogonTimestamp,
	AttrPrefMailForwardingAddress, AttrMailForwardingAddress, AttrPrefMailLocalDeliveryDisabled,
	AttrMailSieveScript, AttrMailOutgoingSieveScript,
	AttrPrefIdentityName, AttrPrefFromAddress, AttrPrefFromDisplay,
	AttrPrefReplyToEnabled, AttrPrefReplyToAddress, AttrPrefReplyToDisplay,
	AttrMailAlias, AttrMailCanonicalAddress, AttrFeatureAddressUnderVerification,
	AttrPrefPasswordRecoveryAddress, AttrPrefPasswordRecoveryAddressStatus,
	AttrTwoFactorAuthEnabled, AttrFeatureTwoFactorAuthRequired, AttrFeatureAppSpecificPasswordsEnabled,
	AttrAppSpecificPassword, AttrTwoFactorAuthTrustedDevices,
}

// Account is an account as GetAccountResponse describes it.
type Account struct {
	// ID is the zimbraId.
	ID string
	// Name is the primary address.
	Name string
	// Attrs holds every value of each returned attribute, in the
	// server's order.
	Attrs map[string][]string
	// DeniedAttrs are the attributes the server listed without a value
	// because the admin has no right to read them: {"n":…,"pd":true}
	// (admin ToXML.encodeAttr, lines 173–184 at zm-mailbox 2b7f9787c69e).
	// ToXML lists only attributes that have a value, so each of these is
	// set; what it is set to is unknown. They are not in Attrs.
	DeniedAttrs []string
	// UnknownAttrs are the requested attributes this server does not
	// have (it predates them): the account has no such setting.
	UnknownAttrs []string
}

// Denied reports whether the admin has no right to read the attribute
// name: it is set, to a value we cannot see. Values returns nil for it.
func (a *Account) Denied(name string) bool {
	return slices.ContainsFunc(a.DeniedAttrs, func(d string) bool { return strings.EqualFold(d, name) })
}

// Unsupported reports whether the server does not know the attribute
// name (GetAccount was asked for it and the server is older).
func (a *Account) Unsupported(name string) bool {
	return slices.ContainsFunc(a.UnknownAttrs, func(d string) bool { return strings.EqualFold(d, name) })
}

// LogValue implements slog.LogValuer: the name and id only, never the
// attributes (which hold sieve scripts and addresses).
func (a *Account) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", a.Name), slog.String("id", a.ID))
}

// Values returns all values of the attribute name. Attribute names are
// case-insensitive in Zimbra.
func (a *Account) Values(name string) []string {
	if v, ok := a.Attrs[name]; ok {
		return v
	}
	// Deterministic when a server sent the name in two spellings.
	var keys []string
	for k := range a.Attrs {
		if strings.EqualFold(k, name) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	slices.Sort(keys)
	return a.Attrs[keys[0]]
}

func (a *Account) first(name string) string {
	if v := a.Values(name); len(v) > 0 {
		return v[0]
	}
	return ""
}

// Status returns zimbraAccountStatus ("active", "locked", ...).
func (a *Account) Status() string { return a.first(AttrAccountStatus) }

// AuthTokenValidityValue returns zimbraAuthTokenValidityValue, -1 when it
// is unset or unreadable, as Zimbra counts it
// (ZAttrAccount.getAuthTokenValidityValue: getIntAttr(…, -1), lines
// 5089–5091 at zm-mailbox 2b7f9787c69e). Tokens minted while it is unset
// carry -1.
func (a *Account) AuthTokenValidityValue() int {
	n, err := strconv.ParseInt(a.first(AttrAuthTokenValidityValue), 10, 32)
	if err != nil {
		return -1
	}
	return int(n)
}

// nextValidityValue is the value after v as LdapProvisioning.setPassword
// computes it (lines 6318–6320 at zm-mailbox 2b7f9787c69e): v+1, wrapping
// to 0 after the largest int32, so an unset value (-1) becomes 0.
func nextValidityValue(v int) int {
	if v >= math.MaxInt32 {
		return 0
	}
	return v + 1
}

// PasswordModifiedTime returns zimbraPasswordModifiedTime; the zero Time
// and no error when it is unset (a password never changed since the
// account was created by a tool that does not set it).
func (a *Account) PasswordModifiedTime() (time.Time, error) {
	v := a.first(AttrPasswordModifiedTime)
	if v == "" {
		return time.Time{}, nil
	}
	return ParseGeneralizedTime(v)
}

// MustChangePassword reports zimbraPasswordMustChange.
func (a *Account) MustChangePassword() bool {
	return strings.EqualFold(a.first(AttrPasswordMustChange), "TRUE")
}

// ForwardingAddresses returns where mail to the account is also sent:
// zimbraPrefMailForwardingAddress (the user's own setting, one value
// holding a comma-separated list) then zimbraMailForwardingAddress (set
// by admins, one address per value), without duplicates.
func (a *Account) ForwardingAddresses() []string {
	return dedupe(splitAddresses(a.Values(AttrPrefMailForwardingAddress)), splitAddresses(a.Values(AttrMailForwardingAddress)))
}

// SieveScript returns zimbraMailSieveScript, the user's incoming filter
// rules. It may be long and is the user's data: do not log it.
func (a *Account) SieveScript() string { return a.first(AttrMailSieveScript) }

// generalizedTimeLayouts are the forms of LDAP generalized time Zimbra
// writes (LdapDateUtil): seconds, and seconds with milliseconds.
var generalizedTimeLayouts = []string{"20060102150405Z", "20060102150405.000Z"}

// ParseGeneralizedTime parses an LDAP generalized time as Zimbra stores it
// (20260101120000Z) into UTC.
func ParseGeneralizedTime(s string) (time.Time, error) {
	for _, layout := range generalizedTimeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("zimbra: %q is not a generalized time (YYYYMMDDHHMMSSZ)", s)
}

func splitAddresses(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func dedupe(lists ...[]string) []string {
	var out []string
	seen := map[string]bool{}
	for _, l := range lists {
		for _, s := range l {
			k := strings.ToLower(s)
			if !seen[k] {
				seen[k] = true
				out = append(out, s)
			}
		}
	}
	return out
}

// unknownAttrRE matches the fault GetAccount gives for a requested
// attribute the server does not have: "invalid request: requested
// attribute X is not on account" (AdminDocumentHandler.getReqAttrs, lines
// 700–723 at zm-mailbox 2b7f9787c69e).
var unknownAttrRE = regexp.MustCompile(`requested attribute (\S+) is not on account`)

// GetAccount returns the account called name (its primary address or an
// alias) with the attributes attrs, or DefaultAttrs when none are given.
// A missing account is an error that matches ErrNoSuchAccount.
//
// Zimbra refuses the whole request when one requested attribute is not in
// its schema, as on a server older than the attribute
// (zimbraPrefPasswordRecoveryAddress arrived in 8.8.9, the two-factor
// attributes in 8.7.0). GetAccount then asks again without it, remembers
// for the life of the Client that the server lacks it, and lists it in
// the result's UnknownAttrs. Attributes the admin may not read come back
// in DeniedAttrs.
func (c *Client) GetAccount(ctx context.Context, name string, attrs ...string) (*Account, error) {
	if len(attrs) == 0 {
		attrs = DefaultAttrs
	}
	var unknown []string
	for range len(attrs) + 1 {
		var ask []string
		for _, at := range attrs {
			if c.attrUnknown(at) {
				if !slices.Contains(unknown, at) {
					unknown = append(unknown, at)
				}
				continue
			}
			ask = append(ask, at)
		}
		if len(ask) == 0 {
			// An empty list would mean every attribute.
			ask = []string{AttrID}
		}
		req := getAccountRequest{JSNS: nsAdmin, Attrs: strings.Join(ask, ","), Account: selector{By: "name", Content: name}}
		var raw json.RawMessage
		err := c.call(ctx, "GetAccountRequest", req, "", name, "", &raw)
		var f *Fault
		if errors.As(err, &f) && f.Code == CodeInvalidRequest {
			if m := unknownAttrRE.FindStringSubmatch(f.Reason); m != nil && slices.Contains(ask, m[1]) {
				c.markAttrUnknown(m[1])
				c.log.LogAttrs(ctx, slog.LevelInfo, "zimbra server lacks an account attribute; asking without it",
					slog.String("attr", m[1]), slog.String("account", name))
				continue
			}
		}
		if err != nil {
			return nil, fmt.Errorf("zimbra: getting account %s: %w", name, err)
		}
		a, err := decodeAccount(raw)
		if err != nil {
			return nil, fmt.Errorf("zimbra: getting account %s: %w", name, err)
		}
		if a.ID == "" {
			return nil, fmt.Errorf("zimbra: getting account %s: %w: account without id", name, errMalformed)
		}
		a.UnknownAttrs = unknown
		return a, nil
	}
	return nil, fmt.Errorf("zimbra: getting account %s: the server refused every attribute list", name)
}

func (c *Client) attrUnknown(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.unknownAttrs[name]
}

func (c *Client) markAttrUnknown(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.unknownAttrs == nil {
		c.unknownAttrs = map[string]bool{}
	}
	c.unknownAttrs[name] = true
}

// RecoveryAddress returns the account's password recovery address
// (zimbraPrefPasswordRecoveryAddress) and its verification status
// (zimbraPrefPasswordRecoveryAddressStatus: "verified", "pending" or "").
// Both are user preferences since Zimbra 8.8.9 (zimbra-attrs.xml lines
// 9495–9501 at zm-mailbox 2b7f9787c69e) that ModifyPrefs lets the user,
// or an attacker in the user's session, set to anything, "verified"
// included; the reset flow then trusts the address
// (ResetPasswordUtil.validateVerifiedPasswordRecoveryAccount). known is
// false when the server predates the attributes or the admin has no right
// to read them; address and status are then "".
func (c *Client) RecoveryAddress(ctx context.Context, name string) (address, status string, known bool, err error) {
	a, err := c.GetAccount(ctx, name, AttrID, AttrPrefPasswordRecoveryAddress, AttrPrefPasswordRecoveryAddressStatus)
	if err != nil {
		return "", "", false, err
	}
	for _, at := range []string{AttrPrefPasswordRecoveryAddress, AttrPrefPasswordRecoveryAddressStatus} {
		if a.Unsupported(at) || a.Denied(at) {
			return "", "", false, nil
		}
	}
	return a.first(AttrPrefPasswordRecoveryAddress), a.first(AttrPrefPasswordRecoveryAddressStatus), true, nil
}

// accountID returns the zimbraId of name, for the calls that take one.
func (c *Client) accountID(ctx context.Context, name string, attrs ...string) (*Account, error) {
	if len(attrs) == 0 {
		attrs = []string{AttrID}
	}
	return c.GetAccount(ctx, name, attrs...)
}

// modify sends ModifyAccountRequest for the account id.
func (c *Client) modify(ctx context.Context, name, id string, attrs ...attr) error {
	req := modifyAccountRequest{JSNS: nsAdmin, ID: id, A: attrs}
	return c.call(ctx, "ModifyAccountRequest", req, "", name, "", nil)
}

// Lock sets zimbraAccountStatus to locked: logins fail, mail is still
// delivered. Existing sessions are not ended; see EndSessions.
func (c *Client) Lock(ctx context.Context, name string) error {
	return c.setStatus(ctx, name, StatusLocked)
}

// Unlock sets zimbraAccountStatus back to active.
func (c *Client) Unlock(ctx context.Context, name string) error {
	return c.setStatus(ctx, name, StatusActive)
}

func (c *Client) setStatus(ctx context.Context, name, status string) error {
	a, err := c.accountID(ctx, name)
	if err != nil {
		return err
	}
	if err := c.modify(ctx, name, a.ID, attr{N: AttrAccountStatus, Content: status}); err != nil {
		return fmt.Errorf("zimbra: setting %s of %s to %s: %w", AttrAccountStatus, name, status, err)
	}
	return nil
}

// SetMustChangePassword sets zimbraPasswordMustChange, which makes the
// next login demand a new password.
func (c *Client) SetMustChangePassword(ctx context.Context, name string, must bool) error {
	a, err := c.accountID(ctx, name)
	if err != nil {
		return err
	}
	v := "FALSE"
	if must {
		v = "TRUE"
	}
	if err := c.modify(ctx, name, a.ID, attr{N: AttrPasswordMustChange, Content: v}); err != nil {
		return fmt.Errorf("zimbra: setting %s of %s: %w", AttrPasswordMustChange, name, err)
	}
	return nil
}

// SetPassword sets the account's password (SetPasswordRequest), as
// LdapProvisioning.setPassword does it (lines 6010–6034 and 6271–6320 at
// zm-mailbox 2b7f9787c69e): it raises zimbraAuthTokenValidityValue by one
// (an unset value counts as -1, so the first set writes 0), which
// invalidates the account's web and SOAP tokens, clears
// zimbraPasswordMustChange if it was TRUE, and sets
// zimbraPasswordModifiedTime. To make the user choose a password at next
// login, call SetMustChangePassword afterwards.
//
// Zimbra first checks the password against the account's policy in a dry
// run. For an admin holding the setAccountPassword right (every global
// admin) a violation does not stop the set: warning is then Zimbra's
// message ("Password violation: account=…, violation=invalid password:
// too short.  Password is set successfully.", in the account's locale).
// For a delegated admin who holds only changeAccountPassword the policy is
// enforced and a violation is an error matching ErrPasswordRejected
// (account.INVALID_PASSWORD with the policy attribute as its argument,
// PASSWORD_RECENTLY_USED, or PASSWORD_CHANGE_TOO_SOON); the password is
// then not set. newPassword appears in no log and no error.
func (c *Client) SetPassword(ctx context.Context, name string, newPassword []byte) (warning string, err error) {
	if len(newPassword) == 0 {
		return "", fmt.Errorf("zimbra: setting password of %s: empty password", name)
	}
	a, err := c.accountID(ctx, name)
	if err != nil {
		return "", err
	}
	secret := string(newPassword)
	req := setPasswordRequest{JSNS: nsAdmin, ID: a.ID, NewPassword: secret}
	var resp setPasswordResponse
	if err := c.call(ctx, "SetPasswordRequest", req, "", name, secret, &resp); err != nil {
		var f *Fault
		if errors.As(err, &f) && passwordRejection(f) {
			return "", fmt.Errorf("zimbra: setting password of %s: %w: %w", name, ErrPasswordRejected, err)
		}
		return "", fmt.Errorf("zimbra: setting password of %s: %w", name, err)
	}
	return redact(string(resp.Message), secret), nil
}
