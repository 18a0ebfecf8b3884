package api

import (
	"context"
	"errors"
	"time"

	"github.com/mailbrake/mailbrake/internal/store"
)

// Errors returned by Methods, mapped to HTTP status codes.
var (
	ErrNotFound   = store.ErrNotFound         // 404
	ErrConflict   = store.ErrConflict         // 409
	ErrBadRequest = errors.New("bad request") // 400
	// ErrUnavailable: another node must act and has not answered (the
	// action waits for it), or the records store does not answer.
	ErrUnavailable = store.ErrUnavailable // 503
)

// Explainer is an add-on of Methods (internal/ops has it): Explain returns
// err, or, when err came from a records store that does not answer, an
// ErrUnavailable that says so in words instead of the driver's error. The
// HTTP handler and the web UI apply it to every failure they show.
type Explainer interface {
	Explain(ctx context.Context, err error) error
}

// Actor identifies who makes a request, for the audit log.
type Actor struct {
	Name string // "cli:root(0)", "api:alice"
	// NoContent hides message content (headers and previews) from this
	// actor: the helpdesk role never sees what users wrote.
	NoContent bool
}

type actorKey struct{}

// WithActor returns a context carrying the actor.
func WithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFrom returns the actor of a request ("unknown" if none).
func ActorFrom(ctx context.Context) Actor {
	if a, ok := ctx.Value(actorKey{}).(Actor); ok && a.Name != "" {
		return a
	}
	return Actor{Name: "unknown"}
}

// HasActor reports whether ctx is an admin's request (it carries an
// actor), as opposed to mailbrake's own work.
func HasActor(ctx context.Context) bool {
	a, ok := ctx.Value(actorKey{}).(Actor)
	return ok && a.Name != ""
}

// HoldList is the answer to ListHolds.
type HoldList struct {
	Holds []store.Hold `json:"holds"`
	// Total is how many holds match the filter on every page, and Newest
	// the newest one's ID: what a bulk action on all of them confirms.
	Total  int   `json:"total"`
	Newest int64 `json:"newest"`
}

// BulkHoldsRequest releases or deletes every held message Filter matches
// (its state, limit and offset are ignored) with an ID at most Through,
// the newest one the admin saw: mail held since is not touched. Expect is
// how many the admin confirmed; when more match, nothing is done.
type BulkHoldsRequest struct {
	Action  string           `json:"action"` // release or delete
	Filter  ListHoldsRequest `json:"filter"`
	Through int64            `json:"through"`
	Expect  int              `json:"expect"`
}

// BulkHoldsResult says what a bulk action did. Remaining are matching
// messages beyond one call's bound, left for another.
type BulkHoldsResult struct {
	Action    string        `json:"action"`
	Matched   int           `json:"matched"`
	Through   int64         `json:"through"`
	Done      int           `json:"done"`
	Failed    []BulkFailure `json:"failed"`
	Remaining int           `json:"remaining"`
}

// BulkFailure is one message a bulk action could not act on.
type BulkFailure struct {
	ID    int64  `json:"id"`
	Error string `json:"error"`
}

// ListHoldsRequest filters holds. State "all" or "" lists every state.
type ListHoldsRequest struct {
	State        string    `json:"state"`
	Account      string    `json:"account"`
	Reason       string    `json:"reason,omitempty"`
	ClientFamily string    `json:"client_family,omitempty"`
	Since        time.Time `json:"since,omitzero"`
	Until        time.Time `json:"until,omitzero"`
	Query        string    `json:"q,omitempty"`
	Limit        int       `json:"limit"`
	Offset       int       `json:"offset"`
}

// Status describes the running daemon.
type Status struct {
	Version   string    `json:"version"`
	StartedAt time.Time `json:"started_at"`
	Policy    string    `json:"policy,omitempty"` // listen address, "" when off
	Milter    string    `json:"milter,omitempty"`
	HTTP      string    `json:"http,omitempty"`
	DataDir   string    `json:"data_dir"`
	PID       int       `json:"pid,omitempty"` // the daemon's process (mailbrake reload signals it)
	// Node is this node's name: cluster.node, else the host name.
	Node string `json:"node,omitempty"`
	// Records is where the records are kept: RecordsSQLite, or
	// RecordsPostgres with cluster.postgres.
	Records string `json:"records,omitempty"`
	// ReadOnly: the records store takes no writes (PostgreSQL does not
	// answer, a full disk), as last probed, a few seconds ago at most.
	ReadOnly bool `json:"read_only"`
}

// Records stores, as Status names them.
const (
	RecordsSQLite   = "sqlite"
	RecordsPostgres = "postgresql"
)

// ReadOnlyNote says what a read-only records store means, for the
// admin; "" while the store takes writes.
func (s Status) ReadOnlyNote() string {
	if !s.ReadOnly {
		return ""
	}
	if s.Records == RecordsPostgres {
		return "Records are read-only: PostgreSQL does not answer. Mail is still checked and held: held messages stay in Postfix's hold queue " +
			"and are recorded when PostgreSQL is back. Until then the lists may fail to load, and releases, deletes and account changes wait."
	}
	return "Records are read-only: the SQLite database takes no writes (a full disk, a read-only file system or a lock held by another process). " +
		"Mail is still checked and held: held messages stay in Postfix's hold queue and are recorded when it takes writes again."
}

// Node states in a NodeList.
const (
	NodeUp   = "up"
	NodeDown = "down"
)

// Node is one mailbrake node as the cluster's records know it.
type Node struct {
	Name    string    `json:"name"`
	State   string    `json:"state"`   // NodeUp, or NodeDown when its last heartbeat is older than NodeList.DownAfterSeconds
	SeenAt  time.Time `json:"seen_at"` // its last heartbeat
	Version string    `json:"version"`
	Self    bool      `json:"self"` // the node that answered
	// PendingCommands are releases and deletes of its holds other nodes
	// asked for that it has not taken yet: they wait for it.
	PendingCommands int `json:"pending_commands"`
}

// NodeList is the answer to ListNodes: every node that recorded a
// heartbeat, by name. Without cluster.postgres (Shared false) a node
// knows no other, and lists itself alone.
type NodeList struct {
	Nodes            []Node `json:"nodes"`
	Shared           bool   `json:"shared"`
	DownAfterSeconds int    `json:"down_after_seconds"`
}

// RetiredNode is what retiring a node took with it.
type RetiredNode struct {
	Node     string `json:"node"`
	Holds    int    `json:"holds"`    // held messages of its queue, now marked deleted
	Commands int    `json:"commands"` // releases and deletes that waited for it, now failed
}

// SyncResult reports a reconciliation with the Postfix queue.
type SyncResult struct {
	Changed []SyncChange `json:"changed"`
}

// SyncChange is one hold whose state followed the queue.
type SyncChange struct {
	ID      int64  `json:"id"`
	QueueID string `json:"queue_id"`
	State   string `json:"state"`
}

// ListAccountsRequest filters accounts ("" or "all": every recorded one).
type ListAccountsRequest struct {
	State string `json:"state"`
	Limit int    `json:"limit"`
}

// AccountDetail is one account: state, counters, recent holds and state history.
type AccountDetail struct {
	store.Account
	Counters    store.Totals     `json:"counters"`
	Baseline    *AccountBaseline `json:"baseline,omitempty"` // the learned normal, when the baseline detector is on
	Novelty     *AccountNovelty  `json:"novelty,omitempty"`  // recent first-time and distinct recipients, when the novelty detector is on
	Score       *AccountScore    `json:"score,omitempty"`    // the findings' score and what it leads to
	RecentHolds []store.Hold     `json:"recent_holds"`
	// RecentVerdicts are the account's last decisions other than a plain
	// allow, newest first (kept in memory since the daemon started).
	RecentVerdicts []VerdictRecord    `json:"recent_verdicts,omitempty"`
	History        []store.AuditEntry `json:"history"`
}

// SetAccountStateRequest moves an account to a state.
type SetAccountStateRequest struct {
	Account string `json:"account"`
	State   string `json:"state"`
	Reason  string `json:"reason"`
}

// Methods is every admin operation. internal/ops implements it; the HTTP
// handler, and later the web UI, call it; the CLI reaches it through Client.
type Methods interface {
	Status(ctx context.Context) (*Status, error)
	ListNodes(ctx context.Context) (*NodeList, error)
	RetireNode(ctx context.Context, name string) (*RetiredNode, error)
	ListHolds(ctx context.Context, r ListHoldsRequest) (*HoldList, error)
	GetHold(ctx context.Context, id int64) (*store.Hold, error)
	ReleaseHold(ctx context.Context, id int64) (*store.Hold, error)
	DeleteHold(ctx context.Context, id int64) (*store.Hold, error)
	BulkHolds(ctx context.Context, r BulkHoldsRequest) (*BulkHoldsResult, error)
	SyncQueue(ctx context.Context) (*SyncResult, error)
	ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error)
	ListAccounts(ctx context.Context, r ListAccountsRequest) ([]store.Account, error)
	GetAccount(ctx context.Context, name string) (*AccountDetail, error)
	SetAccountState(ctx context.Context, r SetAccountStateRequest) (*store.Account, error)
	UnlockAccount(ctx context.Context, r UnlockAccountRequest) (*store.Account, error)
	MarkHoldSpam(ctx context.Context, id int64, note string) (*store.Incident, error)
	ListIncidents(ctx context.Context, r ListIncidentsRequest) ([]store.Incident, error)
	GetIncident(ctx context.Context, id int64) (*store.Incident, error)
	OpenIncident(ctx context.Context, r OpenIncidentRequest) (*store.Incident, error)
	ChangeIncident(ctx context.Context, r ChangeIncidentRequest) (*store.Incident, error)
	ReleaseAndTrust(ctx context.Context, id int64, r TrustRequest) (*store.Hold, error)
	ListTrust(ctx context.Context) ([]store.TrustEntry, error)
	DeleteTrust(ctx context.Context, id int64) error
	Dashboard(ctx context.Context) (*Dashboard, error)
	AccountTimeline(ctx context.Context, name string) (*Timeline, error)
	Config(ctx context.Context) (string, error)
	ListUsers(ctx context.Context) ([]store.User, error)
	PutUser(ctx context.Context, r PutUserRequest) (*store.User, error)
	RemoveUser(ctx context.Context, name string) error
	ListTokens(ctx context.Context) ([]store.Token, error)
	CreateToken(ctx context.Context, r CreateTokenRequest) (*NewToken, error)
	RevokeToken(ctx context.Context, id string) error
}

// TrustRequest releases a held message and trusts its sender with its
// client family for Duration (default 7 days, at most 90).
type TrustRequest struct {
	Duration time.Duration `json:"duration"`
	Note     string        `json:"note"`
}

// VolumePoint is one hour (or five minutes, in a timeline's Recent) of
// outbound mail.
type VolumePoint struct {
	Time       time.Time `json:"time"`
	Messages   int64     `json:"messages"`
	Recipients int64     `json:"recipients"`
	Held       int64     `json:"held"`
}

// Dashboard is the overview of the dashboard page.
type Dashboard struct {
	Held            int           `json:"held"`
	ActiveIncidents int           `json:"active_incidents"`
	Restricted      int           `json:"restricted"`
	Locked          int           `json:"locked"`
	Volume          []VolumePoint `json:"volume"` // hourly, last 24 h, oldest first
}

// TimelineEvent marks a hold, a state change or an incident on a timeline.
type TimelineEvent struct {
	Time time.Time `json:"time"`
	Kind string    `json:"kind"` // hold, state, incident
	Text string    `json:"text"`
}

// Timeline is an account's last 24 hours, and its last 6 at a finer step.
type Timeline struct {
	Points []VolumePoint   `json:"points"` // hourly, last 24 h, oldest first
	Recent []VolumePoint   `json:"recent"` // five-minute, last 6 h, oldest first
	Events []TimelineEvent `json:"events"`
}

// PutUserRequest adds a user or changes one's role or password (an empty
// field leaves it as it is; a new user needs both).
type PutUserRequest struct {
	Name     string `json:"name"`
	Role     string `json:"role"`
	Password string `json:"password"`
}

// CreateTokenRequest makes an API token.
type CreateTokenRequest struct {
	Name string        `json:"name"`
	Role string        `json:"role"`
	TTL  time.Duration `json:"ttl"` // 0: no expiry
}

// NewToken is a created token with its secret, shown once.
type NewToken struct {
	store.Token
	Secret string `json:"secret"`
}

// UnlockAccountRequest lifts a lock. Without Override the lock must have
// lasted response.min_lock and the password must have changed since the
// account was locked (and scrambled).
type UnlockAccountRequest struct {
	Account  string `json:"account"`
	Override bool   `json:"override"`
	Reason   string `json:"reason"`
}

// ListIncidentsRequest filters incidents. State "active" lists open,
// confirmed and contained incidents; "" or "all" every state.
type ListIncidentsRequest struct {
	State   string `json:"state"`
	Account string `json:"account"`
	Limit   int    `json:"limit"`
	Offset  int    `json:"offset"`
}

// OpenIncidentRequest opens an incident by hand (or adds to the account's
// active one).
type OpenIncidentRequest struct {
	Account  string `json:"account"`
	Playbook string `json:"playbook"` // default: the first playbook
	Severity string `json:"severity"` // default: the playbook's
	Note     string `json:"note"`
}

// Incident changes an admin can make.
const (
	IncidentConfirm = "confirm" // run the steps waiting for confirmation (and retry failed ones)
	IncidentDismiss = "dismiss" // a false alarm: lift the restrictions mailbrake set
	IncidentResolve = "resolve" // the user was contacted; close the incident
)

// ChangeIncidentRequest confirms, dismisses or resolves an incident.
type ChangeIncidentRequest struct {
	ID     int64  `json:"id"`
	Change string `json:"change"`
	Note   string `json:"note"`
}

// VerdictRecord is one recent decision about an account's message that
// was not a plain allow (or had dry-run findings).
type VerdictRecord struct {
	Time       time.Time `json:"time"`
	Path       string    `json:"path"`
	QueueID    string    `json:"queue_id,omitempty"`
	Action     string    `json:"action"`            // what was done
	Would      string    `json:"would,omitempty"`   // shadow mode: what would have been done
	Reasons    []string  `json:"reasons"`           // of the findings acted on
	DryRun     []string  `json:"dry_run,omitempty"` // reasons of dry-run findings
	Recipients int       `json:"recipients"`
}
