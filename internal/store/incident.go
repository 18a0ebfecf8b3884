package store

import (
	"context"
	"slices"
	"time"
)

// IncidentState is the lifecycle state of an incident. The values are
// stable: they appear in the API, the CLI, the UI and the audit log.
type IncidentState string

const (
	IncidentOpen      IncidentState = "open"      // evidence seen; the playbook's immediate steps ran
	IncidentConfirmed IncidentState = "confirmed" // an admin confirmed the compromise; the remaining steps run
	IncidentContained IncidentState = "contained" // every step of the playbook is done
	IncidentResolved  IncidentState = "resolved"  // the user was contacted and the account is back in use
	IncidentDismissed IncidentState = "dismissed" // a false alarm
)

// Valid reports whether s is a known state.
func (s IncidentState) Valid() bool {
	switch s {
	case IncidentOpen, IncidentConfirmed, IncidentContained, IncidentResolved, IncidentDismissed:
		return true
	}
	return false
}

// Active reports whether an incident in state s is still being handled:
// an account has at most one active incident, and new evidence joins it.
func (s IncidentState) Active() bool {
	return s == IncidentOpen || s == IncidentConfirmed || s == IncidentContained
}

// Severity orders incidents for review.
type Severity string

const (
	SeverityLow      Severity = "low"
	SeverityMedium   Severity = "medium"
	SeverityHigh     Severity = "high"
	SeverityCritical Severity = "critical"
)

// Rank orders severities; unknown ones rank lowest.
func (s Severity) Rank() int {
	switch s {
	case SeverityMedium:
		return 1
	case SeverityHigh:
		return 2
	case SeverityCritical:
		return 3
	}
	return 0
}

// Valid reports whether s is a known severity.
func (s Severity) Valid() bool {
	switch s {
	case SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical:
		return true
	}
	return false
}

// Evidence is one finding that opened or joined an incident. Detail never
// holds a secret or a message body (a password leak's detail says where,
// not what).
type Evidence struct {
	Time    time.Time `json:"time"`
	Reason  string    `json:"reason"`
	Detail  string    `json:"detail,omitempty"`
	HoldID  int64     `json:"hold_id,omitempty"`
	QueueID string    `json:"queue_id,omitempty"`
	By      string    `json:"by,omitempty"` // "system" for findings, the admin otherwise
}

// StepStatus is the outcome of one playbook step.
type StepStatus string

const (
	StepPending StepStatus = "pending" // waits for an admin's confirmation
	StepDone    StepStatus = "done"
	StepFailed  StepStatus = "failed" // every attempt failed; Detail says why
	StepSkipped StepStatus = "skipped"
	StepDryRun  StepStatus = "dry-run" // would have run
)

// StepRecord is what happened to one step of an incident's playbook.
type StepRecord struct {
	Name     string     `json:"name"`
	Status   StepStatus `json:"status"`
	Detail   string     `json:"detail,omitempty"`
	Attempts int        `json:"attempts,omitempty"`
	At       time.Time  `json:"at"`
}

// Incident is a suspected compromise of one account and its handling.
type Incident struct {
	ID       int64         `json:"id"`
	Account  string        `json:"account"`
	State    IncidentState `json:"state"`
	Severity Severity      `json:"severity"`
	Playbook string        `json:"playbook,omitempty"`
	Reasons  []string      `json:"reasons"`
	Evidence []Evidence    `json:"evidence"`
	Steps    []StepRecord  `json:"steps"`
	Opened   time.Time     `json:"opened"`
	Updated  time.Time     `json:"updated"`
	StateBy  string        `json:"state_by,omitempty"`
	Note     string        `json:"note,omitempty"`
	// Running is set by ops, not stored: the incident's playbook is
	// running now (in the background); its steps' records change.
	Running bool `json:"running,omitempty"`
}

// Step returns the record of the named step, or nil.
func (in *Incident) Step(name string) *StepRecord {
	for i := range in.Steps {
		if in.Steps[i].Name == name {
			return &in.Steps[i]
		}
	}
	return nil
}

// MaxEvidence bounds the evidence kept per incident: the first findings
// show how it started, and a spam run must not grow one row without end.
const MaxEvidence = 200

// Opened says what OpenIncident did.
type Opened struct {
	Created   bool // a new incident
	Kept      bool // the evidence was added (below MaxEvidence, not a duplicate)
	Duplicate bool // the incident already held this message's finding: nothing changed
	Escalated bool // the finding raised the incident's severity or gave it its playbook
}

// IncidentFinding is one finding for OpenIncidents: the account it is
// evidence against and the severity and playbook it brings.
type IncidentFinding struct {
	Account  string
	Severity Severity
	Playbook string
	Evidence Evidence
}

// OpenResult is what OpenIncidents did with one finding: the incident as
// the finding left it (without evidence) and how.
type OpenResult struct {
	Incident *Incident
	Opened
}

// IncidentFilter selects incidents. Zero values mean "any".
type IncidentFilter struct {
	State   IncidentState
	Active  bool // only open, confirmed or contained
	Account string
	Limit   int // 0 means 100
	Offset  int
}

// Incidents stores incidents.
type Incidents interface {
	// OpenIncident adds ev to the account's active incident, raising its
	// severity to sev (and then taking playbook pb, when not empty) and
	// adding ev.Reason to its reasons, or opens a new
	// incident (state open, playbook pb) when the account has none.
	// Evidence beyond MaxEvidence is counted in the reasons but not kept;
	// evidence naming a message (QueueID) with a reason the incident
	// already holds for it changes nothing (the other protocol path
	// reported the same finding). The incident returned carries no
	// evidence (GetIncident has it).
	OpenIncident(ctx context.Context, account string, sev Severity, pb string, ev Evidence) (*Incident, Opened, error)
	// OpenIncidents is OpenIncident for many findings, in order, in one
	// transaction: result i is finding i's. All are written or none.
	OpenIncidents(ctx context.Context, fs []IncidentFinding) ([]OpenResult, error)
	// GetIncident returns one incident, or ErrNotFound.
	GetIncident(ctx context.Context, id int64) (*Incident, error)
	// ActiveIncident returns the account's active incident, or ErrNotFound.
	ActiveIncident(ctx context.Context, account string) (*Incident, error)
	// ListIncidents returns incidents, most recently updated first.
	ListIncidents(ctx context.Context, f IncidentFilter) ([]Incident, error)
	// SetIncidentState moves an incident to state to when its current state
	// is one of from; otherwise ErrConflict (or ErrNotFound).
	SetIncidentState(ctx context.Context, id int64, from []IncidentState, to IncidentState, by, note string, at time.Time) error
	// PutStep records a step's outcome, replacing an earlier record of the
	// same step.
	PutStep(ctx context.Context, id int64, s StepRecord) error
}

// Absorb applies a finding to the incident it joins, as every backend
// does: a stronger finding raises the severity and brings its playbook, an
// incident without a playbook takes the finding's, the reason is added and
// the incident's time follows the evidence. It reports whether the
// incident changed, and whether that is an escalation (a change of an
// incident this finding did not create).
func (in *Incident) Absorb(f IncidentFinding, created bool) (changed, escalated bool) {
	ev := f.Evidence
	if f.Severity.Rank() > in.Severity.Rank() {
		// Stronger evidence brings its stronger playbook.
		in.Severity = f.Severity
		if f.Playbook != "" {
			in.Playbook = f.Playbook
		}
		changed, escalated = true, !created
	}
	if in.Playbook == "" && f.Playbook != "" {
		in.Playbook = f.Playbook
		changed, escalated = true, !created
	}
	if ev.Reason != "" && !slices.Contains(in.Reasons, ev.Reason) {
		in.Reasons = append(in.Reasons, ev.Reason)
		changed = true
	}
	if ev.Time.After(in.Updated) {
		in.Updated = ev.Time
		changed = true
	}
	return changed, escalated
}
