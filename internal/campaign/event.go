package campaign

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Event is what one node's tracker learned, for the other nodes of a
// cluster (internal/learnbus): a message of a print, the link hosts of a
// message, a text an admin marked as spam, an account's run an admin
// trusted. Prints are keyed hashes, so the nodes must share the key
// (novelty.key_file). Apply replays it on another tracker.
type Event struct {
	Op      string   `json:"op"` // EventMessage, EventHosts, EventSpam or EventTrust
	Account string   `json:"a,omitempty"`
	Text    uint64   `json:"t,omitempty"`
	Links   uint64   `json:"l,omitempty"`
	Similar []uint64 `json:"s,omitempty"`
	Hosts   []uint64 `json:"h,omitempty"`
	Lure    bool     `json:"lure,omitempty"`
	New     int      `json:"n,omitempty"` // first-time recipients
	NewExt  int      `json:"x,omitempty"` // of them outside the local domains
	At      int64    `json:"at"`          // Unix seconds: the message's time, the mark's, or the trust's end
}

// The Event operations.
const (
	EventMessage = "msg"   // Observe
	EventHosts   = "hosts" // ObserveHosts
	EventSpam    = "spam"  // MarkSpam
	EventTrust   = "trust" // Trust
)

// Bounds of an event from another node: far above what a message
// carries, so only garbage is refused.
const (
	maxEventAccount = 512
	maxEventKeys    = 256
	maxEventHosts   = 4096
	maxEventRcpts   = 10_000_000
)

// MessageEvent is the event of a message of p that Observe recorded.
func MessageEvent(account string, p Print, newRcpts, newExt int, at time.Time) []byte {
	return encode(Event{Op: EventMessage, Account: account, Text: p.Text, Links: p.Links, Similar: p.Similar, Lure: p.Lure, New: newRcpts, NewExt: newExt, At: at.Unix()})
}

// HostsEvent is the event of ObserveHosts.
func HostsEvent(hosts []uint64, newRcpts int, at time.Time) []byte {
	return encode(Event{Op: EventHosts, Hosts: hosts, NewExt: newRcpts, At: at.Unix()})
}

// SpamEvent is the event of MarkSpam.
func SpamEvent(p Print, at time.Time) []byte {
	return encode(Event{Op: EventSpam, Text: p.Text, Links: p.Links, At: at.Unix()})
}

// TrustEvent is the event of Trust.
func TrustEvent(account string, p Print, until time.Time) []byte {
	return encode(Event{Op: EventTrust, Account: account, Text: p.Text, Links: p.Links, Similar: p.Similar, At: until.Unix()})
}

func encode(e Event) []byte {
	b, _ := json.Marshal(e) // plain fields: never fails
	return b
}

// Apply replays an event another node's tracker learned.
func (t *Tracker) Apply(data []byte) error {
	var e Event
	if err := json.Unmarshal(data, &e); err != nil {
		return fmt.Errorf("campaign: learned event: %w", err)
	}
	if err := e.check(); err != nil {
		return fmt.Errorf("campaign: learned event: %w", err)
	}
	p := Print{Text: e.Text, Links: e.Links, Similar: e.Similar, Lure: e.Lure}
	at := time.Unix(e.At, 0)
	switch e.Op {
	case EventMessage:
		t.Observe(e.Account, p, e.New, e.NewExt, at)
	case EventHosts:
		t.ObserveHosts(e.Hosts, e.NewExt, at)
	case EventSpam:
		t.MarkSpam(p, at)
	case EventTrust:
		t.Trust(e.Account, p, at)
	}
	return nil
}

func (e *Event) check() error {
	switch e.Op {
	case EventMessage, EventTrust:
		if e.Account == "" || len(e.Account) > maxEventAccount {
			return errors.New("no account, or too long")
		}
	case EventHosts, EventSpam:
	default:
		return fmt.Errorf("unknown operation %q", e.Op)
	}
	switch {
	case len(e.Similar) > maxEventKeys:
		return fmt.Errorf("%d similar keys", len(e.Similar))
	case len(e.Hosts) > maxEventHosts:
		return fmt.Errorf("%d hosts", len(e.Hosts))
	case e.New < 0 || e.New > maxEventRcpts || e.NewExt < 0 || e.NewExt > maxEventRcpts:
		return errors.New("recipient counts out of range")
	case e.At <= 0 || e.At > 1<<40:
		return errors.New("time out of range")
	}
	return nil
}
