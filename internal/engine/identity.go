package engine

import (
	"fmt"
	"net/netip"
	"strings"
)

// Identity decides whose counters a message is charged to. The SASL login
// wins. Zimbra's webmail relays to Postfix from the mailbox server without
// SASL and, with zimbraSmtpSendAddAuthenticatedUser=TRUE, names the account
// in X-Authenticated-User; that header is believed only from trusted relay
// networks, so an outside client cannot pick whose counters it charges.
type Identity struct {
	trusted []netip.Prefix
	// Header is the account header name (canonical form), "" for none.
	Header string
}

// NewIdentity parses the trusted networks (CIDRs or single addresses).
func NewIdentity(networks []string, header string) (*Identity, error) {
	id := &Identity{Header: header}
	for _, n := range networks {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			a, err2 := netip.ParseAddr(n)
			if err2 != nil {
				return nil, fmt.Errorf("trusted network %q: %w", n, err)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		id.trusted = append(id.trusted, p.Masked())
	}
	return id, nil
}

// Trusted reports whether addr is in a trusted network.
func (id *Identity) Trusted(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range id.trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Resolve names the account. headerValue is the account header's value
// ("" when absent or not visible on this path).
func (id *Identity) Resolve(saslUser, headerValue, sender string, client netip.Addr) (string, AccountSource, bool) {
	trusted := client.IsValid() && id.Trusted(client)
	if u := normalizeAccount(saslUser); u != "" {
		return u, SourceSASL, trusted
	}
	if trusted {
		if u := normalizeAccount(headerValue); u != "" {
			return u, SourceHeader, trusted
		}
		if u := normalizeAccount(sender); u != "" {
			return u, SourceSender, trusted
		}
	}
	return Unauthenticated, SourceUnauthenticated, trusted
}

// normalizeAccount lower-cases, trims angle brackets and whitespace, and
// bounds the length so an account name is always a sane key.
func normalizeAccount(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimSuffix(strings.TrimPrefix(s, "<"), ">")
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 320 { // 320: RFC 5321's 64-octet local part + @ + 255-octet domain
		return ""
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] == 0x7f {
			return ""
		}
	}
	return strings.ToLower(s)
}
