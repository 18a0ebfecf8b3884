package origin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// event is what one node's tracker learned, for the other nodes of a
// cluster (internal/learnbus): an account submitted a message from an
// address.
type event struct {
	Account string     `json:"a"`
	Addr    netip.Addr `json:"ip"`
	At      int64      `json:"at"` // Unix seconds
}

const maxEventAccount = 512

// Event is the event of Observe(account, addr, at), for ApplyLearned on
// the other nodes.
func Event(account string, addr netip.Addr, at time.Time) []byte {
	b, _ := json.Marshal(event{Account: account, Addr: addr, At: at.Unix()}) // plain fields: never fails
	return b
}

// ApplyLearned replays what another node's tracker observed (Event).
func (t *Tracker) ApplyLearned(data []byte) error {
	var e event
	if err := json.Unmarshal(data, &e); err != nil {
		return fmt.Errorf("origin: learned event: %w", err)
	}
	switch {
	case e.Account == "" || len(e.Account) > maxEventAccount:
		return errors.New("origin: learned event: no account, or too long")
	case !e.Addr.IsValid():
		return errors.New("origin: learned event: no address")
	case e.At <= 0 || e.At > 1<<40:
		return errors.New("origin: learned event: time out of range")
	}
	t.Observe(e.Account, e.Addr, time.Unix(e.At, 0))
	return nil
}
