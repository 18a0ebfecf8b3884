package zimbra

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// defaultIdentityName is the name of the identity made of the account's
// own attributes (ProvisioningConstants.DEFAULT_IDENTITY_NAME).
const defaultIdentityName = "DEFAULT"

// Persistence reports the settings an attacker who had the account's
// password can leave behind to keep receiving or steering its mail.
type Persistence struct {
	// Account and ID name the account.
	Account string
	ID      string
	// Status is zimbraAccountStatus at the time of the report.
	Status string
	// ForwardingAddresses is zimbraPrefMailForwardingAddress, which the
	// user sets in Preferences (one value, comma-separated addresses).
	ForwardingAddresses []string
	// AdminForwardingAddresses is zimbraMailForwardingAddress, which only
	// admins set and the user does not see.
	AdminForwardingAddresses []string
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
	// PasswordModified is zimbraPasswordModifiedTime, zero when unset.
	// Zimbra keeps no change time for the other attributes.
	PasswordModified time.Time
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

// Persistence reads the account's forwarding, filters and identities. It
// sends GetAccountRequest, then the account-service GetIdentitiesRequest
// on the account's behalf (as zmprov's getIdentities does); a failure of
// the latter is reported in IdentitiesError, not returned.
func (c *Client) Persistence(ctx context.Context, name string) (*Persistence, error) {
	a, err := c.GetAccount(ctx, name, DefaultAttrs...)
	if err != nil {
		return nil, err
	}
	p := &Persistence{
		Account:                  a.Name,
		ID:                       a.ID,
		Status:                   a.Status(),
		ForwardingAddresses:      splitAddresses(a.Values(AttrPrefMailForwardingAddress)),
		AdminForwardingAddresses: splitAddresses(a.Values(AttrMailForwardingAddress)),
		LocalDeliveryDisabled:    strings.EqualFold(a.first(AttrPrefMailLocalDeliveryDisabled), "TRUE"),
		SieveScript:              describeScript(a.first(AttrMailSieveScript)),
		OutgoingSieveScript:      describeScript(a.first(AttrMailOutgoingSieveScript)),
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
	ids, err := c.identities(ctx, name, a.ID)
	if err != nil && ctx.Err() != nil {
		return nil, err
	}
	if err != nil {
		p.IdentitiesError = err.Error()
		p.Identities = []Identity{def}
		return p, nil
	}
	// GetIdentities lists DEFAULT too; put it first, as it is the account.
	p.Identities = []Identity{def}
	for _, id := range ids {
		if strings.EqualFold(id.Name, def.Name) || (id.ID != "" && id.ID == a.ID) {
			p.Identities[0] = id
			continue
		}
		p.Identities = append(p.Identities, id)
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
