package engine

import (
	"fmt"
	"net/netip"

	"github.com/mailbrake/mailbrake/internal/store"
)

// Identity decides whose counters a message is charged to. The SASL login
// wins. Zimbra's webmail relays to Postfix from the mailbox server without
// SASL and, with zimbraSmtpSendAddAuthenticatedUser=TRUE, names the account
// in X-Authenticated-User; that header is believed only from trusted relay
// networks, so an outside client cannot pick whose counters it charges, and
// only its last copy: the relay adds its copy after any the client wrote
// (see HeaderAccount).
//
// The policy path carries no headers, so for a trusted relay without SASL it
// cannot name the account: ResolvePolicy then returns SourceRelayed and the
// milter decides, unless PolicySender says to charge the envelope sender
// (sites without the milter).
type Identity struct {
	trusted []netip.Prefix
	// Header is the account header name (canonical form), "" for none.
	Header string
	// PolicySender: on the policy path, a trusted relay's mail without
	// SASL is charged to its envelope sender (identity.relayed_on_policy:
	// sender) instead of being left to the milter.
	PolicySender bool
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

// ResolvePolicy names the account on the policy path, which sees no
// headers: the SASL login; for a trusted relay without SASL, SourceRelayed
// (the milter decides) unless PolicySender is set; anything else is
// unauthenticated.
func (id *Identity) ResolvePolicy(saslUser, sender string, client netip.Addr) (string, AccountSource, bool) {
	trusted := client.IsValid() && id.Trusted(client)
	if u := normalizeAccount(saslUser); u != "" {
		return u, SourceSASL, trusted
	}
	if trusted {
		if id.PolicySender {
			if u := normalizeAccount(sender); u != "" {
				return u, SourceSender, trusted
			}
		}
		return Unauthenticated, SourceRelayed, trusted
	}
	return Unauthenticated, SourceUnauthenticated, trusted
}

// HeaderAccount reads the account header's copies, in the order they
// appear in the message, and returns the account the relay named — the
// last copy — and the other accounts named by earlier copies that differ
// from it. Zimbra's MailSender adds X-Authenticated-User with addHeader,
// which ZInternetHeaders places after any copy already present (zm-mailbox
// store/src/java/com/zimbra/cs/mailbox/MailSender.java, common/src/java/
// com/zimbra/common/zmime/ZInternetHeaders.java), and any SOAP client can
// upload a raw message with its own copy (SendMsg <m aid=…>): the first
// copy is the client's, the last the relay's. Copies that cannot be an
// account (empty, over-long, control characters) count as differing.
func HeaderAccount(copies []string) (account string, others []string) {
	if len(copies) == 0 {
		return "", nil
	}
	last := normalizeAccount(copies[len(copies)-1])
	for _, c := range copies[:len(copies)-1] {
		n := normalizeAccount(c)
		if n == last && n != "" {
			continue
		}
		if n == "" {
			n = "(unreadable)"
		}
		dup := false
		for _, o := range others {
			if o == n {
				dup = true
				break
			}
		}
		if !dup {
			others = append(others, n)
		}
	}
	return last, others
}

// normalizeAccount is store.AccountKey: one normalisation for the engine
// and every admin entry point.
func normalizeAccount(s string) string { return store.AccountKey(s) }
