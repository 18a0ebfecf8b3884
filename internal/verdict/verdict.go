// Package verdict is the catalogue of what a verdict asks the MTA to do:
// allow, tag, hold, defer, reject, ordered by strength. The configuration
// decodes its verdict settings into these values once (config.Load), and
// the engine, the detectors and both protocol paths use them as they are.
package verdict

import "fmt"

// Action is what a verdict asks the MTA to do, ordered by strength.
type Action int

const (
	Allow Action = iota
	Tag
	Hold
	Defer
	Reject
)

var names = [...]string{"allow", "tag", "hold", "defer", "reject"}

// All lists every action, weakest first.
func All() []Action { return []Action{Allow, Tag, Hold, Defer, Reject} }

func (a Action) String() string {
	if a >= 0 && int(a) < len(names) {
		return names[a]
	}
	return "unknown"
}

// Parse parses an action's name.
func Parse(s string) (Action, bool) {
	for i, n := range names {
		if n == s {
			return Action(i), true
		}
	}
	return 0, false
}

// MarshalText writes the action's name.
func (a Action) MarshalText() ([]byte, error) {
	if a < 0 || int(a) >= len(names) {
		return nil, fmt.Errorf("unknown verdict %d", int(a))
	}
	return []byte(names[a]), nil
}

// UnmarshalText reads an action's name.
func (a *Action) UnmarshalText(b []byte) error {
	v, ok := Parse(string(b))
	if !ok {
		return fmt.Errorf("must be one of allow, tag, hold, defer, reject, got %q", b)
	}
	*a = v
	return nil
}

// Ptr returns a pointer to a copy of a (a rule's verdict is a pointer: a
// rule without one is refused).
func (a Action) Ptr() *Action { return &a }

// Family is the kind of evidence a finding is. Findings of one family in
// one message are one piece of evidence (the same recipients drive the
// novelty, baseline and recipient-rate findings): a message scores the
// highest finding of each family, and a score alone restricts an account
// only with evidence from more than one message.
type Family string

const (
	// Volume: how many recipients or messages — rate rules, the learned
	// baseline, first-time recipients. A class announcement has it.
	Volume Family = "volume"
	// Scripted: a scripted client sending in bulk (the zclient trap).
	Scripted Family = "scripted"
	// Campaign: one message sent as a run of separate messages to people
	// the account never wrote to (campaign fingerprints).
	Campaign Family = "campaign"
	// Identity: forged account or client headers, a client family the
	// account never used.
	Identity Family = "identity"
	// Phish: replies to phish and to listed phishers.
	Phish Family = "phish"
	// Secret: the account's own password in an outbound message.
	Secret Family = "secret"
	// State: the account is restricted or locked (adds no score).
	State Family = "state"
	// Reviewed: an admin's judgement (a held message marked as spam). Not
	// a family of engine findings: rules cannot take it (Families).
	Reviewed Family = "reviewed"
)

// Families lists every family findings and rules have.
func Families() []Family { return []Family{Volume, Scripted, Campaign, Identity, Phish, Secret, State} }

// Valid reports whether f is a known family.
func (f Family) Valid() bool {
	for _, g := range Families() {
		if f == g {
			return true
		}
	}
	return false
}
