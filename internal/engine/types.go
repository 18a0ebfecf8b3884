package engine

import (
	"net/netip"
	"time"

	"github.com/mailbrake/mailbrake/internal/fingerprint"
	"github.com/mailbrake/mailbrake/internal/store"
	"github.com/mailbrake/mailbrake/internal/verdict"
)

// Stage is where in the SMTP transaction a decision is made.
type Stage string

const (
	StageRcpt Stage = "rcpt" // per recipient (policy protocol_state=RCPT)
	StageEOM  Stage = "eom"  // end of message: recipient count known
)

// Path is the protocol path a submission came in on.
type Path string

const (
	PathPolicy Path = "policy"
	PathMilter Path = "milter"
)

// Action is what a verdict asks the MTA to do, ordered by strength (the
// catalogue is package verdict).
type Action = verdict.Action

const (
	ActionAllow  = verdict.Allow
	ActionTag    = verdict.Tag
	ActionHold   = verdict.Hold
	ActionDefer  = verdict.Defer
	ActionReject = verdict.Reject
)

// Family is the kind of evidence a finding is (the catalogue is package
// verdict).
type Family = verdict.Family

// ParseAction parses an action name.
func ParseAction(s string) (Action, bool) { return verdict.Parse(s) }

// Reason names why a finding was reported. Values are stable kebab-case and
// appear in logs, metrics, the API, the UI and the audit log. Rules from the
// configuration may declare their own reasons; these are the built-in ones.
type Reason string

const (
	ReasonBulkFromScriptedClient Reason = "bulk-from-scripted-client"
	ReasonRateRecipientsHour     Reason = "rate-recipients-hour"
	ReasonRateMessagesHour       Reason = "rate-messages-hour"
	ReasonRateRecipientsDay      Reason = "rate-recipients-day"
	// ReasonAccountRestricted: the account is restricted; all its outbound mail is held.
	ReasonAccountRestricted Reason = "account-restricted"
	// ReasonAccountLocked: the account is locked; its outbound mail is held.
	ReasonAccountLocked Reason = "account-locked"
	// ReasonEngineError is used when the engine could not decide and the
	// configured on_error verdict applied.
	ReasonEngineError Reason = "engine-error"
	// ReasonIdentityHeaderForged: the account header appears more than
	// once naming different accounts; a client wrote one (the relay's copy,
	// the last, names the account charged).
	ReasonIdentityHeaderForged Reason = "identity-header-forged"
	// ReasonClientHeaderMismatch: X-Mailer copies name different client
	// families; the relay's copy (the last) decided. Evidence only.
	ReasonClientHeaderMismatch Reason = "client-header-mismatch"
)

// AccountSource says how the account was determined.
type AccountSource string

const (
	SourceSASL            AccountSource = "sasl"            // SMTP AUTH login
	SourceHeader          AccountSource = "header"          // account header from a trusted relay
	SourceSender          AccountSource = "sender"          // envelope sender of a trusted relay
	SourceUnauthenticated AccountSource = "unauthenticated" // none of the above
	// SourceRelayed: a trusted relay without SASL on the policy path,
	// which carries no headers and so cannot see the relay's account
	// header. The milter names the account; the policy path neither
	// charges nor decides (identity.relayed_on_policy: milter).
	SourceRelayed AccountSource = "relayed"
)

// Unauthenticated is the account name used when nobody can be named
// (store.Unauthenticated: records name it so).
const Unauthenticated = store.Unauthenticated

// Direction says whether a message leaves the site or arrives from outside.
type Direction string

const (
	// Outbound: sent by a named account (SASL, trusted header or trusted
	// relay's sender).
	Outbound Direction = "outbound"
	// Inbound: from outside; the account is unauthenticated.
	Inbound Direction = "inbound"
)

// DirectionOf derives the direction from how the account was named.
func DirectionOf(src AccountSource) Direction {
	if src == SourceUnauthenticated {
		return Inbound
	}
	return Outbound
}

// Submission is one message (or, at StageRcpt, one recipient of it) as the
// engine sees it.
type Submission struct {
	Time          time.Time
	Stage         Stage
	Path          Path
	Account       string
	AccountSource AccountSource
	ClientAddress netip.Addr
	// Origin is the address that submitted the message for the account:
	// the SASL client, or the last X-Originating-IP (the one the Zimbra
	// relay added for its web client); invalid when unknown.
	Origin netip.Addr
	// ClientPort is the SMTP client's TCP port (policy client_port,
	// Postfix 3.0 and later; the milter's connect information), 0 when
	// unknown. With the address it ties the milter's view of a message to
	// the policy path's when the policy path never learned the queue ID.
	ClientPort    uint16
	TrustedClient bool
	Client        fingerprint.Result
	Sender        string
	// Recipient is the recipient being checked at StageRcpt.
	Recipient string
	// Recipients known so far (bounded); RecipientCount is authoritative.
	Recipients     []string
	RecipientCount int
	Size           int64
	Subject        string
	QueueID        string
	// Instance ties the policy requests of one message together.
	Instance string
	// Direction of the message; empty means derived from AccountSource.
	Direction Direction
	// Message headers the detectors read (milter path and replay only).
	MessageID  string
	InReplyTo  string
	References []string
	From       string // From header address
	ReplyTo    string // Reply-To header address
	// Header returns a header's first value ("" when absent or not
	// visible on this path). Nil on the policy path.
	Header func(name string) string
	// ForgedAccounts are the accounts named by earlier copies of the
	// account header that differ from the relay's copy (the last), which
	// named Account; set only when the account came from the header.
	ForgedAccounts []string
	// OtherClientFamilies are the client families of X-Mailer copies other
	// than the relay's (the last, which gave Client) that differ from it.
	OtherClientFamilies []fingerprint.Family
	// HeaderValues returns every value of a header, in message order (nil
	// on the policy path).
	HeaderValues func(name string) []string
	// Reinjected: the message came back from a content filter and passed
	// this engine before (a postfix.reinjection_listeners listener, or
	// ReceivedIDs naming a message the engine just saw). It is neither
	// charged nor held again; inbound detectors learn from it (the filter
	// has added its tags by now).
	Reinjected bool
	// ReceivedIDs are the queue IDs the message's Received headers name
	// (package received), newest first (milter path only).
	ReceivedIDs []string
	// Novelty of the recipients, filled at end of message by the novelty
	// detector before the rules run; nil when unknown.
	Novelty *Novelty
	// Body is the raw message, headers and body (milter path only; nil on
	// the policy path and in replay).
	Body []byte
	// Prints are the message's campaign fingerprints (keyed hashes,
	// "text:HEX", "links:HEX") as the campaign detector computed them, for
	// the hold record.
	Prints []string
	// Secrets are values a detector found that must never be shown (a
	// leaked password): the caller masks them in previews and clears them.
	Secrets [][]byte
}

// Novelty describes how new a message's recipients are to its account
// (see internal/novelty) and the account's recent first-time recipients.
type Novelty struct {
	New      int `json:"new"`      // recipients the account has not mailed within the lookback
	Distinct int `json:"distinct"` // distinct recipients of the message
	Domains  int `json:"domains"`  // distinct recipient domains
	External int `json:"external"` // recipients outside the local domains
	// NewExternal are the first-time recipients outside the local
	// domains.
	NewExternal int `json:"new_external"`

	FirstTime1h  int `json:"first_time_1h"`
	FirstTime24h int `json:"first_time_24h"`
	Distinct1h   int `json:"distinct_1h"`
	Distinct24h  int `json:"distinct_24h"`
	// Tracked is how long the account has been observed.
	Tracked time.Duration `json:"tracked"`
}

// Finding is one thing a rule noticed.
type Finding struct {
	Rule   string `json:"rule"`
	Reason Reason `json:"reason"`
	// Family is the kind of evidence (verdict.Family): one message scores
	// the highest finding of each family once.
	Family   Family `json:"family,omitempty"`
	Action   Action `json:"-"`
	DryRun   bool   `json:"dry_run,omitempty"`
	Score    int    `json:"score,omitempty"`
	Evidence string `json:"evidence,omitempty"`
	// Day marks evidence over a day's window (first-time recipients in
	// 24 hours, a day above the baseline): every later message of that day
	// trips it again, so it scores once a day, not once an hour.
	Day bool `json:"day,omitempty"`
}

// Verdict is the engine's decision about a submission.
type Verdict struct {
	Action   Action
	Reasons  []Reason // reasons of the findings that gave Action (not dry-run)
	Findings []Finding
	Text     string // reply text for defer/reject (generic)
	Totals   store.Totals
	// Shadow is the action the verdict would have had; in shadow mode
	// Action is allow and Shadow says what was not done.
	Shadow Action
	// AccountState is the account's state when the message was decided.
	AccountState store.AccountState
	// Score is the account's finding score in the score window, including
	// this message's findings; ScoredMessages is how many messages it
	// comes from (a restriction needs more than one). Not read (0) for a
	// message that scores nothing from an account in normal state.
	Score          int64
	ScoredMessages int64
	// Escalate, when set, is the state the account should move to because
	// its score crossed a threshold. The daemon applies it through ops.
	Escalate store.AccountState
	// Undecided: this path could not name the account (SourceRelayed) and
	// left the message to the other path; nothing was charged.
	Undecided bool
	// Reinjected: the message passed the engine before (see Submission);
	// it was only learned from.
	Reinjected bool
}
