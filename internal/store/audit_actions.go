package store

// AuditAction is what an audit entry says was done: a stable kebab-case
// name, stored, served (API, CLI, web) and counted
// (mailbrake_admin_operations_total) as its text. This file is the
// catalogue: every entry mailbrake writes carries one of the constants
// below, and AuditActions lists them all.
type AuditAction string

// Held messages (target "hold:<id>" unless said).
const (
	// AuditHold: a message was put on hold — the engine's verdict recorded
	// (actor "system"), or a message found in the hold queue without a
	// record and recorded from the queue by the queue sync (actor
	// "postfix").
	AuditHold AuditAction = "quarantine-hold"
	// AuditRelease: an admin released a held message, audited on the node
	// that holds it (for another node's hold, when that node carries out
	// the command, in the admin's name).
	AuditRelease AuditAction = "quarantine-release"
	// AuditDelete: an admin deleted a held message, audited like
	// AuditRelease.
	AuditDelete AuditAction = "quarantine-delete"
	// AuditBulk: an admin released or deleted every held message matching
	// a filter; one entry for the call (target "holds", or the account
	// the filter names), besides each message's own AuditRelease or
	// AuditDelete.
	AuditBulk AuditAction = "quarantine-bulk"
	// AuditSync: the queue sync found a held message changed in Postfix's
	// queue (released, deleted, expired, or back in the hold queue) and
	// followed it (actor "postfix").
	AuditSync AuditAction = "quarantine-sync"
	// AuditHoldSpam: an admin marked a held message as spam, which opens
	// (or adds to) an incident on its account.
	AuditHoldSpam AuditAction = "quarantine-spam"
)

// Accounts (target "account:<name>").
const (
	// AuditAccountState: an account's state changed — by an admin, an
	// escalation, a playbook step, another node of the cluster (actor
	// "cluster:<node>"), or carried into the cluster's store — and, for
	// an admin's lock, each configured system's lock outcome.
	AuditAccountState AuditAction = "account-state"
	// AuditAccountUnlock: an admin unlocked an account (with the reason
	// it was allowed), or a configured system failed to unlock it (actor
	// "system").
	AuditAccountUnlock AuditAction = "account-unlock"
	// AuditAccountHoldQueued: the account's mail waiting in this node's
	// Postfix queue was put on hold, as it became restricted or locked
	// (also at start, for changes made while the node was stopped).
	AuditAccountHoldQueued AuditAction = "account-hold-queued"
)

// Incidents (target "incident:<id>").
const (
	// AuditIncidentOpen: an incident was opened, by the engine's findings
	// (actor "system") or by an admin.
	AuditIncidentOpen AuditAction = "incident-open"
	// AuditIncidentEvidence: a finding was added to an open incident as
	// evidence.
	AuditIncidentEvidence AuditAction = "incident-evidence"
	// AuditIncidentState: an incident changed state — confirmed,
	// dismissed or resolved by an admin, contained when every step of its
	// playbook is done.
	AuditIncidentState AuditAction = "incident-state"
	// AuditStep: a playbook step of an incident ended (done, failed,
	// skipped, dry-run), one entry each time the step runs.
	AuditStep AuditAction = "incident-step"
)

// Trust, users, tokens.
const (
	// AuditTrustAdd: an admin released a held message and trusted its
	// account's client family for a while (target the account).
	AuditTrustAdd AuditAction = "trust-add"
	// AuditTrustDelete: an admin deleted a trust entry (target
	// "trust:<id>").
	AuditTrustDelete AuditAction = "trust-delete"
	// AuditUser: an admin created, changed or removed a web user (target
	// "user:<name>").
	AuditUser AuditAction = "user"
	// AuditToken: an API token was created or revoked, by hand or with
	// its creator's removal (target "token:<id>").
	AuditToken AuditAction = "token"
)

// Cluster (target "node:<name>").
const (
	// AuditNodeRetire: an admin retired a node that is down: its held
	// messages marked deleted, its waiting commands failed.
	AuditNodeRetire AuditAction = "node-retire"
	// AuditRecordsCarried: a node that ran alone joined a cluster and
	// brought its own records into the cluster's store (CarryOver).
	AuditRecordsCarried AuditAction = "records-carried"
)

// AuditActions lists every audit action mailbrake writes.
func AuditActions() []AuditAction {
	return []AuditAction{
		AuditHold, AuditRelease, AuditDelete, AuditBulk, AuditSync, AuditHoldSpam,
		AuditAccountState, AuditAccountUnlock, AuditAccountHoldQueued,
		AuditIncidentOpen, AuditIncidentEvidence, AuditIncidentState, AuditStep,
		AuditTrustAdd, AuditTrustDelete, AuditUser, AuditToken,
		AuditNodeRetire, AuditRecordsCarried,
	}
}
