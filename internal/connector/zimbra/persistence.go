package zimbra

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// defaultIdentityName is the name of the identity made of the account's
// own attributes (ProvisioningConstants.DEFAULT_IDENTITY_NAME).
const defaultIdentityName = "DEFAULT"

// Persistence reports the settings an attacker who had the account's
// password can leave behind to keep receiving or steering its mail, or to
// get back in. Each part that could not be read says so in its own error
// field, or, for an attribute, in DeniedAttrs (set, but the admin may not
// read it: unknown, never absent) or UnsupportedAttrs (the server's
// version has no such setting).
type Persistence struct {
	// Account and ID name the account.
	Account string
	ID      string
	// Status is zimbraAccountStatus at the time of the report.
	Status string
	// Aliases (zimbraMailAlias) and CanonicalAddress
	// (zimbraMailCanonicalAddress) are the account's own addresses,
	// besides Account: a From of one of them is no sign of anything.
	Aliases          []string
	CanonicalAddress string
	// ForwardingAddresses is zimbraPrefMailForwardingAddress, which the
	// user sets in Preferences (one value, comma-separated addresses).
	ForwardingAddresses []string
	// AdminForwardingAddresses is zimbraMailForwardingAddress, which only
	// admins set and the user does not see.
	AdminForwardingAddresses []string
	// ForwardingUnderVerification is zimbraFeatureAddressUnderVerification:
	// a forwarding address set by the user that waits for its owner to
	// confirm it (ModifyPrefs.java lines 125–153).
	ForwardingUnderVerification string
	// LocalDeliveryDisabled is zimbraPrefMailLocalDeliveryDisabled: the
	// mailbox keeps no copy of forwarded mail.
	LocalDeliveryDisabled bool
	// SieveScript is zimbraMailSieveScript, the user's incoming filters
	// (which can redirect, forward or discard); OutgoingSieveScript is
	// zimbraMailOutgoingSieveScript.
	SieveScript         Script
	OutgoingSieveScript Script
	// Identities are the account's sending identities, the DEFAULT one
	// (the account's own attributes) first, with their From and Reply-To.
	Identities []Identity
	// IdentitiesError is set when the identities other than DEFAULT could
	// not be read (GetIdentitiesRequest failed); Identities then holds
	// only DEFAULT.
	IdentitiesError string
	// RecoveryAddress and RecoveryAddressStatus are
	// zimbraPrefPasswordRecoveryAddress and its status ("verified",
	// "pending"): user preferences an attacker can set, "verified"
	// included, to reset the password later.
	RecoveryAddress, RecoveryAddressStatus string
	// TwoFactor is the two-factor and app-specific password state.
	TwoFactor TwoFactor
	// Grants are the rights granted on the account (GetGrantsRequest), such
	// as sendAs to another account; GrantsError says why they could not be
	// read.
	Grants      []Grant
	GrantsError string
	// Shares are the account's folders shared with others
	// (GetShareInfoRequest); SharesError says why they could not be read
	// (it needs the adminLoginAs right).
	Shares      []Share
	SharesError string
	// DataSources are the external accounts the mailbox fetches from or
	// the feeds it reads (GetDataSourcesRequest); DataSourcesError says
	// why they could not be read.
	DataSources      []DataSource
	DataSourcesError string
	// DeniedAttrs are attributes GetAccount listed without a value: they
	// are set, but the admin has no right to read them.
	DeniedAttrs []string
	// UnsupportedAttrs are attributes the server's version does not have.
	UnsupportedAttrs []string
	// PasswordModified is zimbraPasswordModifiedTime, zero when unset.
	// Zimbra keeps no change time for the other attributes.
	PasswordModified time.Time
}

// Denied reports whether the attribute is set but unreadable to the
// admin: what it holds is unknown.
func (p *Persistence) Denied(attr string) bool {
	return slices.ContainsFunc(p.DeniedAttrs, func(d string) bool { return strings.EqualFold(d, attr) })
}

// Unsupported reports whether the server's version lacks the attribute.
func (p *Persistence) Unsupported(attr string) bool {
	return slices.ContainsFunc(p.UnsupportedAttrs, func(d string) bool { return strings.EqualFold(d, attr) })
}

// OwnAddress reports whether addr is one of the account's own addresses:
// its name, an alias or its canonical address, as the DEFAULT identity's
// From is when the user never changed it (Provisioning.getDefaultIdentity
// lines 2276–2295, AccountUtil.getFriendlyEmailAddress lines 158–176).
func (p *Persistence) OwnAddress(addr string) bool {
	addr = strings.TrimSpace(addr)
	if strings.EqualFold(addr, p.Account) || p.CanonicalAddress != "" && strings.EqualFold(addr, p.CanonicalAddress) {
		return true
	}
	return slices.ContainsFunc(p.Aliases, func(a string) bool { return strings.EqualFold(a, addr) })
}

// TwoFactor is the account's two-factor state, where the server has the
// attributes (8.7.0 and later). The flags hold Zimbra's values: "TRUE",
// "FALSE", or "" when unset; the feature flags are inherited from the COS.
type TwoFactor struct {
	// Enabled is zimbraTwoFactorAuthEnabled: the user turned it on.
	Enabled string
	// Required is zimbraFeatureTwoFactorAuthRequired.
	Required string
	// AppSpecificPasswordsEnabled is
	// zimbraFeatureAppSpecificPasswordsEnabled: app-specific passwords,
	// which bypass the second factor for IMAP, POP and SMTP, may be made.
	AppSpecificPasswordsEnabled string
	// AppSpecificPasswords and TrustedDevices count the values GetAccount
	// returned for zimbraAppSpecificPassword and
	// zimbraTwoFactorAuthTrustedDevices. Zimbra sends one "VALUE-BLOCKED"
	// for however many there are (Provisioning.sanitizedAttrValue), so 1
	// means "at least one".
	AppSpecificPasswords int
	TrustedDevices       int
}

// Grant is one right granted on the account (an ACE).
type Grant struct {
	// GranteeType is "usr", "grp", "dom", "all", "pub", "guest", "key"…
	GranteeType, GranteeName, GranteeID string
	// Right is the right's name, e.g. "sendAs", "sendOnBehalfOf",
	// "loginAs".
	Right string
	// Deny marks a negative grant; CanDelegate one the grantee may pass on.
	Deny, CanDelegate bool
}

// Share is one of the account's folders shared with someone.
type Share struct {
	FolderPath, FolderID, View string
	// Rights are Zimbra's letters: r read, w write, i insert, d delete,
	// a administer, x act as…
	Rights                              string
	GranteeType, GranteeName, GranteeID string
}

// DataSource is an external source the mailbox imports from. Its
// password is never read (Zimbra never returns it).
type DataSource struct {
	Name, ID string
	// Type is "pop3", "imap", "caldav", "rss", "cal", "gal"…
	Type string
	// Host is zimbraDataSourceHost; Enabled zimbraDataSourceEnabled.
	Host, Enabled string
}

// Script describes a sieve script without its content.
type Script struct {
	Present bool
	// Size is the length in bytes.
	Size int
	// SHA256 is the hex SHA-256 of the script, to tell whether it changed.
	SHA256 string
}

func describeScript(s string) Script {
	if strings.TrimSpace(s) == "" {
		return Script{}
	}
	sum := sha256.Sum256([]byte(s))
	return Script{Present: true, Size: len(s), SHA256: hex.EncodeToString(sum[:])}
}

// Identity is one sending identity (zimbraIdentity, or the account itself
// for DEFAULT).
type Identity struct {
	Name           string
	ID             string
	FromAddress    string
	FromDisplay    string
	ReplyToEnabled bool
	ReplyToAddress string
	ReplyToDisplay string
}

func identityFromAttrs(name, id string, attrs map[string][]string) Identity {
	get := func(k string) string {
		if v := attrs[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	if name == "" {
		name = get(AttrPrefIdentityName)
	}
	if id == "" {
		id = get(AttrPrefIdentityID)
	}
	return Identity{
		Name:           name,
		ID:             id,
		FromAddress:    get(AttrPrefFromAddress),
		FromDisplay:    get(AttrPrefFromDisplay),
		ReplyToEnabled: strings.EqualFold(get(AttrPrefReplyToEnabled), "TRUE"),
		ReplyToAddress: get(AttrPrefReplyToAddress),
		ReplyToDisplay: get(AttrPrefReplyToDisplay),
	}
}

// Persistence reads what an attacker may have left on the account:
// GetAccountRequest for its attributes, then, each on its own and each
// allowed to fail without failing the report, the account-service
// GetIdentitiesRequest on the account's behalf (as zmprov's getIdentities
// does), GetGrantsRequest on the account, GetShareInfoRequest for its
// folders and GetDataSourcesRequest. Only a failure to read the account
// itself, or a cancelled ctx, is an error.
func (c *Client) Persistence(ctx context.Context, name string) (*Persistence, error) {
	a, err := c.GetAccount(ctx, name, DefaultAttrs...)
	if err != nil {
		return nil, err
	}
	p := &Persistence{
		Account:                     a.Name,
		ID:                          a.ID,
		Status:                      a.Status(),
		Aliases:                     a.Values(AttrMailAlias),
		CanonicalAddress:            a.first(AttrMailCanonicalAddress),
		ForwardingAddresses:         splitAddresses(a.Values(AttrPrefMailForwardingAddress)),
		AdminForwardingAddresses:    splitAddresses(a.Values(AttrMailForwardingAddress)),
		ForwardingUnderVerification: a.first(AttrFeatureAddressUnderVerification),
		LocalDeliveryDisabled:       strings.EqualFold(a.first(AttrPrefMailLocalDeliveryDisabled), "TRUE"),
		SieveScript:                 describeScript(a.first(AttrMailSieveScript)),
		OutgoingSieveScript:         describeScript(a.first(AttrMailOutgoingSieveScript)),
		RecoveryAddress:             a.first(AttrPrefPasswordRecoveryAddress),
		RecoveryAddressStatus:       a.first(AttrPrefPasswordRecoveryAddressStatus),
		TwoFactor: TwoFactor{
			Enabled:                     a.first(AttrTwoFactorAuthEnabled),
			Required:                    a.first(AttrFeatureTwoFactorAuthRequired),
			AppSpecificPasswordsEnabled: a.first(AttrFeatureAppSpecificPasswordsEnabled),
			AppSpecificPasswords:        len(a.Values(AttrAppSpecificPassword)),
			TrustedDevices:              len(a.Values(AttrTwoFactorAuthTrustedDevices)),
		},
		DeniedAttrs:      a.DeniedAttrs,
		UnsupportedAttrs: a.UnknownAttrs,
	}
	if p.Account == "" {
		p.Account = name
	}
	if t, err := a.PasswordModifiedTime(); err == nil {
		p.PasswordModified = t
	}

	def := identityFromAttrs("", a.ID, a.Attrs)
	if def.Name == "" {
		def.Name = defaultIdentityName
	}
	p.Identities = []Identity{def}
	ids, err := c.identities(ctx, name, a.ID)
	switch {
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case err != nil:
		p.IdentitiesError = err.Error()
	default:
		// GetIdentities lists DEFAULT too; put it first, as it is the account.
		for _, id := range ids {
			if strings.EqualFold(id.Name, def.Name) || (id.ID != "" && id.ID == a.ID) {
				p.Identities[0] = id
				continue
			}
			p.Identities = append(p.Identities, id)
		}
	}
	if p.Grants, err = c.grants(ctx, name, a.ID); err != nil {
		p.GrantsError = err.Error()
	}
	if p.Shares, err = c.shares(ctx, name, a.ID); err != nil {
		p.SharesError = err.Error()
	}
	if p.DataSources, err = c.dataSources(ctx, name, a.ID); err != nil {
		p.DataSourcesError = err.Error()
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return p, nil
}

// identities sends {"GetIdentitiesRequest":{"_jsns":"urn:zimbraAccount"}}
// with the account as the header's target (SoapProvisioning.getAllIdentities
// → invokeOnTargetAccount).
func (c *Client) identities(ctx context.Context, name, id string) ([]Identity, error) {
	var raw json.RawMessage
	if err := c.call(ctx, "GetIdentitiesRequest", getIdentitiesRequest{JSNS: nsAccount}, id, name, "", &raw); err != nil {
		return nil, fmt.Errorf("zimbra: getting identities of %s: %w", name, err)
	}
	ids, err := decodeIdentities(raw)
	if err != nil {
		return nil, fmt.Errorf("zimbra: getting identities of %s: %w", name, err)
	}
	return ids, nil
}

// grants sends GetGrantsRequest with <target type="account" by="id">
// (GetGrants.java lines 47–97 at zm-mailbox 2b7f9787c69e): the ACEs on the
// account itself. It needs the viewGrants right.
func (c *Client) grants(ctx context.Context, name, id string) ([]Grant, error) {
	req := getGrantsRequest{JSNS: nsAdmin, Target: grantTarget{Type: "account", By: "id", Content: id}}
	var raw json.RawMessage
	if err := c.call(ctx, "GetGrantsRequest", req, "", name, "", &raw); err != nil {
		return nil, fmt.Errorf("zimbra: getting grants on %s: %w", name, err)
	}
	g, err := decodeGrants(raw)
	if err != nil {
		return nil, fmt.Errorf("zimbra: getting grants on %s: %w", name, err)
	}
	return g, nil
}

// shares sends GetShareInfoRequest with <owner by="id"> (GetShareInfo.java
// lines 73–91): every grant on the owner's folders, whoever the grantee.
// It needs the adminLoginAs right on the account.
func (c *Client) shares(ctx context.Context, name, id string) ([]Share, error) {
	req := getShareInfoRequest{JSNS: nsAdmin, Owner: selector{By: "id", Content: id}}
	var raw json.RawMessage
	if err := c.call(ctx, "GetShareInfoRequest", req, "", name, "", &raw); err != nil {
		return nil, fmt.Errorf("zimbra: getting shares of %s: %w", name, err)
	}
	s, err := decodeShares(raw)
	if err != nil {
		return nil, fmt.Errorf("zimbra: getting shares of %s: %w", name, err)
	}
	return s, nil
}

// dataSources sends GetDataSourcesRequest id=… (GetDataSources.java lines
// 65–81). It needs the adminLoginAs right on the account.
func (c *Client) dataSources(ctx context.Context, name, id string) ([]DataSource, error) {
	var raw json.RawMessage
	if err := c.call(ctx, "GetDataSourcesRequest", getDataSourcesRequest{JSNS: nsAdmin, ID: id}, "", name, "", &raw); err != nil {
		return nil, fmt.Errorf("zimbra: getting data sources of %s: %w", name, err)
	}
	ds, err := decodeDataSources(raw)
	if err != nil {
		return nil, fmt.Errorf("zimbra: getting data sources of %s: %w", name, err)
	}
	return ds, nil
}
