package store

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"
)

// ErrNotFound is returned when a record does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a state change is not allowed from the
// record's current state (for example releasing a message already deleted).
var ErrConflict = errors.New("state conflict")

// ErrUnavailable: the node or system that must act has not answered;
// what was asked waits for it (cluster mode's node commands).
var ErrUnavailable = errors.New("not available")

// HoldState is the lifecycle state of a held message. The values are stable:
// they appear in the API, the CLI, the UI and the audit log.
type HoldState string

const (
	HoldHeld     HoldState = "held"     // in the Postfix hold queue, waiting for review
	HoldReleased HoldState = "released" // released from the hold queue (by mailbrake or postsuper -H)
	HoldDeleted  HoldState = "deleted"  // deleted from the queue (by mailbrake or postsuper -d)
	HoldExpired  HoldState = "expired"  // aged out of the queue (maximal_queue_lifetime)
)

// Valid reports whether s is a known state.
func (s HoldState) Valid() bool {
	switch s {
	case HoldHeld, HoldReleased, HoldDeleted, HoldExpired:
		return true
	}
	return false
}

// Hold is the index record of one message in the Postfix hold queue. Postfix
// keeps the message itself; the store keeps why it was held and what it
// looked like.
type Hold struct {
	ID             int64     `json:"id"`
	QueueID        string    `json:"queue_id"`
	Path           string    `json:"path"` // "policy" or "milter": the path that first held it
	Account        string    `json:"account"`
	Sender         string    `json:"sender"`
	Recipients     []string  `json:"recipients"`
	RecipientCount int       `json:"recipient_count"`
	Subject        string    `json:"subject"`
	Client         string    `json:"client"`        // X-Mailer / User-Agent as seen
	ClientFamily   string    `json:"client_family"` // fingerprint family
	ClientAddress  string    `json:"client_address"`
	Reasons        []string  `json:"reasons"`
	Size           int64     `json:"size"`
	Headers        string    `json:"headers,omitempty"` // raw header block (milter path only)
	Preview        string    `json:"preview,omitempty"` // bounded text preview (milter path only)
	HeldAt         time.Time `json:"held_at"`
	State          HoldState `json:"state"`
	StateAt        time.Time `json:"state_at"`
	StateBy        string    `json:"state_by,omitempty"`
	// Prints are the message's campaign fingerprints (keyed hashes, hex;
	// milter path): marking it as spam holds the same text from any
	// account.
	Prints []string `json:"prints,omitempty"`
	// Node is the cluster node whose Postfix queue holds the message
	// (releasing or deleting it is that node's job); empty on a single
	// node. A merge fills it when empty, as the other fields.
	Node string `json:"node,omitempty"`
	// Waiting are the releases and deletes asked of Node that it has not
	// carried out yet (it is down): filled when one hold is read for an
	// admin, never stored.
	Waiting []WaitingCommand `json:"waiting,omitempty"`
}

// WaitingCommand is a node command not carried out yet, as a hold shows
// it.
type WaitingCommand struct {
	ID        int64     `json:"id"`
	Op        HoldState `json:"op"`
	Actor     string    `json:"actor"`
	From      string    `json:"from"`
	CreatedAt time.Time `json:"created_at"`
}

// Unauthenticated is the account of a record when nobody could be named
// (mail from outside, unauthenticated): not an account to act on.
const Unauthenticated = "unauthenticated"

// HoldFilter selects holds for listing. Zero values mean "any".
type HoldFilter struct {
	State        HoldState
	Account      string
	Reason       string    // holds with this reason among theirs
	ClientFamily string    // fingerprint family
	Node         string    // the cluster node holding the message
	Since, Until time.Time // held at or after Since, before Until (zero: open)
	// Query matches a substring of the subject, sender or a recipient,
	// case-insensitively; with QueryNoSubject, of the sender or a
	// recipient only (a searcher who may not see content).
	Query          string
	QueryNoSubject bool
	// Through, when not zero, selects holds with an ID at most Through:
	// what an admin saw when confirming an action on everything matching,
	// not what was held since.
	Through int64
	Limit   int // 0 means a backend default (100)
	Offset  int
}

// HoldCount is how many holds a filter matches, and the newest one's ID
// (0 when none).
type HoldCount struct {
	N      int   `json:"n"`
	Newest int64 `json:"newest"`
}

// Quarantine stores the index of held messages.
type Quarantine interface {
	// PutHold records a hold. When a hold with the same non-empty QueueID
	// is still held (the policy and the milter path can both hold one
	// message), the records are merged: reasons are unioned and empty fields
	// filled from h; state fields never change in a merge. Records no longer
	// held never merge: Postfix reuses queue IDs once a queue file is gone.
	// h is not modified. It returns the stored record.
	PutHold(ctx context.Context, h *Hold) (*Hold, error)
	// PutHolds records holds as PutHold does, in one transaction, in
	// order (a later hold merges into an earlier one of the same batch).
	// Created reports, for each, whether it made a new record rather than
	// merging into one. On an error nothing is recorded.
	PutHolds(ctx context.Context, hs []*Hold) ([]PutResult, error)
	// GetHold returns one hold by ID, or ErrNotFound.
	GetHold(ctx context.Context, id int64) (*Hold, error)
	// HoldByQueueID returns the newest hold with this Postfix queue ID, or
	// ErrNotFound.
	HoldByQueueID(ctx context.Context, queueID string) (*Hold, error)
	// ListHolds returns holds, newest first.
	ListHolds(ctx context.Context, f HoldFilter) ([]Hold, error)
	// CountHolds counts the holds ListHolds would return without Limit and
	// Offset.
	CountHolds(ctx context.Context, f HoldFilter) (HoldCount, error)
	// SetHoldState moves a hold to state to, only when its current state is
	// from; otherwise it returns ErrConflict (or ErrNotFound).
	SetHoldState(ctx context.Context, id int64, from, to HoldState, by string, at time.Time) error
}

// PutResult is the outcome of one hold of PutHolds.
type PutResult struct {
	Hold    *Hold
	Created bool
}

// AuditEntry records who did what, when, to what.
type AuditEntry struct {
	ID     int64       `json:"id"`
	Time   time.Time   `json:"time"`
	Actor  string      `json:"actor"`  // "cli:root", "system", "postfix", "api:alice" …
	Action AuditAction `json:"action"` // one of AuditActions, e.g. "quarantine-release"
	Target string      `json:"target"` // e.g. "hold:12", "account:u@example.org"
	Detail string      `json:"detail,omitempty"`
}

// AuditFilter selects audit entries. Zero values mean "any".
type AuditFilter struct {
	Target string
	Since  time.Time
	Limit  int
}

// Audit is the append-only audit log.
type Audit interface {
	AppendAudit(ctx context.Context, e AuditEntry) error
	// AppendAudits appends entries in one transaction, in order.
	AppendAudits(ctx context.Context, es []AuditEntry) error
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) // newest first
}

// Retention prunes what is kept only for a while. Held messages (state
// held) are never touched: they wait in Postfix's hold queue for review.
type Retention interface {
	// Prune clears the headers and preview of holds that left the hold
	// queue before p.Previews, deletes such holds before p.Holds and audit
	// entries before p.Audit (a zero time: none), in short transactions,
	// and reports how many rows each touched.
	Prune(ctx context.Context, p Prune) (Pruned, error)
}

// Prune says what Retention.Prune removes: everything before each time.
type Prune struct {
	Previews, Holds, Audit time.Time
}

// Pruned counts what Prune removed.
type Pruned struct {
	Previews, Holds, Audit int64
}

// Snapshots persists opaque per-account counter state so that sliding
// windows survive a restart of a single-node installation.
type Snapshots interface {
	SaveSnapshots(ctx context.Context, snaps map[string][]byte) error
	LoadSnapshots(ctx context.Context) (map[string][]byte, error)
	// SnapshotPage returns up to limit snapshots with keys after after,
	// in key order (bytewise): a daemon restores a million accounts page
	// by page, in the background, without one long read.
	SnapshotPage(ctx context.Context, after string, limit int) ([]Snapshot, error)
}

// Snapshot is one stored snapshot.
type Snapshot struct {
	Key   string
	Value []byte
}

// Totals are an account's sliding-window sums.
type Totals struct {
	Messages1h    int64 `json:"messages_1h"`
	Recipients1h  int64 `json:"recipients_1h"`
	Messages24h   int64 `json:"messages_24h"`
	Recipients24h int64 `json:"recipients_24h"`
}

// Counters keeps per-account sliding-window counts of messages and
// recipients. Implementations must be safe for concurrent use; several MTA
// nodes sharing one backend must agree (one atomic call per charge).
type Counters interface {
	// Charge adds msgs and rcpts to account at t and returns the totals
	// including them. With a non-empty msgKey (one message, see
	// engine's message book) msgs and rcpts are what the message amounts
	// to so far, not increments: only what exceeds the largest amounts
	// charged under that key before is added. A message charged at RCPT
	// (one recipient at a time) and again at end of message, or by both
	// protocol paths, is so counted once, and never less than its largest
	// report. Keys are remembered for an hour.
	Charge(ctx context.Context, account, msgKey string, t time.Time, msgs, rcpts int64) (Totals, error)
	// Peek returns the totals at t without changing them.
	Peek(ctx context.Context, account string, t time.Time) (Totals, error)
}

// AsyncCharger is implemented by counters that can take a charge whose
// totals are not needed without the caller waiting for it (cluster mode:
// the charge joins the next pipeline to Redis). Every Charge or Peek made
// after ChargeAsync returns sees the charge. done is called once, from
// another goroutine, with the outcome; it must not block.
type AsyncCharger interface {
	ChargeAsync(ctx context.Context, account, msgKey string, t time.Time, msgs, rcpts int64, done func(error))
}

// PeekCharger is implemented by counters that can charge and return the
// totals from before the charge in one round trip (cluster mode: one
// script call per RCPT instead of a read and a charge, half of Redis's
// work). charged is false when they did not charge (the shared counters
// do not answer: the totals are this node's, and the caller charges after
// deciding, as without). A charge made for a recipient that is then
// deferred or rejected is taken back with Refund, without waiting; done
// is called once, from another goroutine, and must not block.
type PeekCharger interface {
	PeekCharge(ctx context.Context, account string, t time.Time, msgs, rcpts int64) (before Totals, charged bool, err error)
	Refund(ctx context.Context, account string, t time.Time, msgs, rcpts int64, done func(error))
}

// AccountState is an account's containment state. The values are stable.
type AccountState string

const (
	AccountNormal     AccountState = "normal"
	AccountWatch      AccountState = "watch"      // findings seen; verdicts unchanged, admins alerted
	AccountRestricted AccountState = "restricted" // every outbound message is held
	AccountLocked     AccountState = "locked"     // login locked (account response); outbound mail is held
)

// Rank orders states by severity; unknown states rank as normal.
func (s AccountState) Rank() int {
	switch s {
	case AccountWatch:
		return 1
	case AccountRestricted:
		return 2
	case AccountLocked:
		return 3
	}
	return 0
}

// Valid reports whether s is a known state.
func (s AccountState) Valid() bool {
	switch s {
	case AccountNormal, AccountWatch, AccountRestricted, AccountLocked:
		return true
	}
	return false
}

// Account is an account's recorded state. Accounts never recorded are
// normal.
type Account struct {
	Name    string       `json:"account"`
	State   AccountState `json:"state"`
	StateAt time.Time    `json:"state_at"`
	StateBy string       `json:"state_by,omitempty"`
	Reason  string       `json:"reason,omitempty"`
}

// AccountFilter selects accounts. Zero values mean "any".
type AccountFilter struct {
	State AccountState
	Limit int // 0 means 100
}

// Accounts stores account states.
type Accounts interface {
	// GetAccount returns the recorded state, or ErrNotFound.
	GetAccount(ctx context.Context, name string) (*Account, error)
	// PutAccount records a state (insert or replace).
	PutAccount(ctx context.Context, a Account) error
	// ListAccounts returns recorded accounts, most recent change first.
	ListAccounts(ctx context.Context, f AccountFilter) ([]Account, error)
}

// AccountKey is the one form of an account name everywhere — the
// engine's charges and states and every admin command: lower-cased,
// without angle brackets and surrounding white space ("<User@X>" is
// "user@x"); "" for a name that cannot be one (empty, longer than an
// address may be, or with control or space characters inside).
func AccountKey(s string) string {
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

// NodeCommand is an action on a held message that only the node whose
// Postfix queue holds it can carry out (cluster mode): another node asks,
// the holding node does it and records the outcome.
type NodeCommand struct {
	ID        int64
	Node      string    // the node that must carry it out
	Op        HoldState // released or deleted
	HoldID    int64
	Actor     string // who asked, as the audit names them
	From      string // the node that asked
	CreatedAt time.Time
	State     CommandState
	Detail    string // the outcome: an error's text when failed
	DoneAt    time.Time
}

// CommandState is where a NodeCommand is.
type CommandState string

const (
	CommandPending CommandState = "pending" // waiting for its node
	CommandRunning CommandState = "running" // its node took it
	CommandDone    CommandState = "done"
	CommandFailed  CommandState = "failed"
)

// NodeStatus is what the cluster knows of a node.
type NodeStatus struct {
	Node    string    `json:"node"`
	SeenAt  time.Time `json:"seen_at"` // its last heartbeat
	Version string    `json:"version"`
	// Age is how long ago SeenAt was by the store's own clock, the one
	// that stamped it: a node's state does not depend on the asking
	// node's clock agreeing.
	Age time.Duration `json:"-"`
	// Pending counts the commands submitted for the node that it has not
	// taken yet.
	Pending int `json:"pending"`
}

// Commands is the channel of node commands: the cluster's shared store.
type Commands interface {
	// SubmitCommand records a pending command and wakes its node. A
	// hold has one command waiting (pending or running) at most: another
	// is refused with ErrConflict, atomically.
	SubmitCommand(ctx context.Context, c NodeCommand) (int64, error)
	// Command returns a command as it is now.
	Command(ctx context.Context, id int64) (*NodeCommand, error)
	// ClaimCommands marks up to n pending commands of node running and
	// returns them, oldest first; a command is claimed once.
	ClaimCommands(ctx context.Context, node string, n int) ([]NodeCommand, error)
	// FinishCommand records a claimed command's outcome.
	FinishCommand(ctx context.Context, id int64, state CommandState, detail string) error
	// WaitingCommands returns the commands of a hold not finished yet
	// (pending or running), oldest first.
	WaitingCommands(ctx context.Context, holdID int64) ([]NodeCommand, error)
	// RetireNode forgets a node taken out of the cluster: its heartbeat,
	// its commands not carried out (failed, "node retired"), and its holds
	// still held, marked deleted by actor (its Postfix queue is gone). It
	// returns how many holds and commands that was. ErrNotFound: no such
	// node.
	RetireNode(ctx context.Context, node, actor string, at time.Time) (holds, commands int, err error)
	// RequeueCommands puts node's claimed (running) commands back to
	// pending and returns how many: the process of node that claimed them
	// stopped before it recorded their outcome (killed). A node calls it
	// as it starts serving commands.
	RequeueCommands(ctx context.Context, node string) (int, error)
	// ListenCommands calls wake when a command for node is submitted,
	// until ctx ends or the connection fails.
	ListenCommands(ctx context.Context, node string, wake func()) error
	// Heartbeat records that node is alive, written by the process
	// instance (a random name each process takes at start), and says
	// whether the node's previous heartbeat was another instance's: at a
	// process's first beat that is its predecessor; at any later one, a
	// second process running under the same node name. Nodes lists every
	// node seen, by name, with its commands still pending.
	Heartbeat(ctx context.Context, node, version, instance string) (other bool, err error)
	Nodes(ctx context.Context) ([]NodeStatus, error)
}

// Union appends to a the elements of b it does not hold yet, in order, and
// drops duplicates within a. Reasons and fingerprints are unions.
func Union(a, b []string) []string {
	out := make([]string, 0, len(a)+len(b))
	for _, l := range [][]string{a, b} {
		for _, s := range l {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// Merge is what every backend does when a hold of the same node and queue
// ID is recorded again (the other protocol path held the message too): it
// fills h's empty fields from n and unions the reasons and fingerprints.
// It never touches the ID or the state fields.
func (h *Hold) Merge(n *Hold) {
	fill := func(dst *string, src string) {
		if *dst == "" {
			*dst = src
		}
	}
	fill(&h.Path, n.Path)
	fill(&h.Account, n.Account)
	fill(&h.Sender, n.Sender)
	fill(&h.Subject, n.Subject)
	fill(&h.Client, n.Client)
	fill(&h.ClientFamily, n.ClientFamily)
	fill(&h.ClientAddress, n.ClientAddress)
	fill(&h.Headers, n.Headers)
	fill(&h.Preview, n.Preview)
	fill(&h.Node, n.Node)
	if len(h.Recipients) == 0 {
		h.Recipients = slices.Clone(n.Recipients)
	}
	if h.RecipientCount == 0 {
		h.RecipientCount = n.RecipientCount
	}
	if h.Size == 0 {
		h.Size = n.Size
	}
	if h.HeldAt.IsZero() {
		h.HeldAt = n.HeldAt
	}
	h.Reasons = Union(h.Reasons, n.Reasons)
	if p := Union(h.Prints, n.Prints); len(p) > 0 {
		h.Prints = p
	}
}
