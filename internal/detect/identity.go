package detect

import (
	"context"
	"strings"

	"github.com/mailbrake/mailbrake/internal/engine"
	"github.com/mailbrake/mailbrake/internal/verdict"
)

// Identity reports what the copies of the identity and client headers say
// about a message (milter path): an account header that names different
// accounts in different copies (one written by the client, the last by the
// trusted relay) is a forgery of its own, identity-header-forged, reported
// on the account the relay named; X-Mailer copies that name different
// client families are evidence, client-header-mismatch, never the decision.
// See engine.HeaderAccount and fingerprint's doc.
type Identity struct {
	o IdentityOptions
}

// IdentityOptions configures the Identity detector.
type IdentityOptions struct {
	Header        string // account header name, for the evidence
	ForgedAction  engine.Action
	ForgedScore   int
	MismatchScore int
}

// NewIdentity returns the detector.
func NewIdentity(o IdentityOptions) *Identity { return &Identity{o: o} }

// Inbound implements engine.Detector: inbound mail names no account.
func (d *Identity) Inbound(context.Context, *engine.Submission) []engine.Finding { return nil }

// Outbound implements engine.Detector.
func (d *Identity) Outbound(_ context.Context, sub *engine.Submission) []engine.Finding {
	var out []engine.Finding
	if len(sub.ForgedAccounts) > 0 {
		out = append(out, engine.Finding{
			Rule: "identity", Reason: engine.ReasonIdentityHeaderForged, Family: verdict.Identity, Action: d.o.ForgedAction, Score: d.o.ForgedScore,
			Evidence: d.o.Header + ": the relay's copy (the last) names " + sub.Account + "; earlier copies name " + bounded(sub.ForgedAccounts),
		})
	}
	if len(sub.OtherClientFamilies) > 0 {
		fams := make([]string, len(sub.OtherClientFamilies))
		for i, f := range sub.OtherClientFamilies {
			fams[i] = string(f)
		}
		out = append(out, engine.Finding{
			Rule: "identity", Reason: engine.ReasonClientHeaderMismatch, Family: verdict.Identity, Action: engine.ActionAllow, Score: d.o.MismatchScore,
			Evidence: "X-Mailer: the relay's copy (the last) is " + string(sub.Client.Family) + "; earlier copies are " + strings.Join(fams, ", "),
		})
	}
	return out
}

// bounded joins at most five names.
func bounded(names []string) string {
	if len(names) > 5 {
		return strings.Join(names[:5], ", ") + " and more"
	}
	return strings.Join(names, ", ")
}
