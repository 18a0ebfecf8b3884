package baseline

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mailbrake/mailbrake/internal/fingerprint"
)

// event is what one node's detector learned, for the other nodes of a
// cluster (internal/learnbus): a message of an account, or a burst an
// admin judged legitimate.
type event struct {
	Op      string `json:"op"` // eventMessage or eventAbsorb
	Account string `json:"a"`
	At      int64  `json:"at"` // Unix seconds
	Rcpts   int    `json:"n,omitempty"`
	Family  string `json:"f,omitempty"`
}

const (
	eventMessage = "msg"
	eventAbsorb  = "absorb"

	maxEventAccount = 512
	maxEventFamily  = 64
	maxEventRcpts   = 1_000_000
)

func encodeEvent(e event) []byte {
	b, _ := json.Marshal(e) // plain fields: never fails
	return b
}

// ApplyLearned applies what another node's detector learned (Learned's
// event) without judging it and without telling Learned again.
func (d *Detector) ApplyLearned(data []byte) error {
	var e event
	if err := json.Unmarshal(data, &e); err != nil {
		return fmt.Errorf("baseline: learned event: %w", err)
	}
	switch {
	case e.Account == "" || len(e.Account) > maxEventAccount:
		return errors.New("baseline: learned event: no account, or too long")
	case e.At <= 0 || e.At > 1<<40:
		return errors.New("baseline: learned event: time out of range")
	case e.Rcpts < 0 || e.Rcpts > maxEventRcpts || len(e.Family) > maxEventFamily:
		return errors.New("baseline: learned event: out of range")
	}
	at := time.Unix(e.At, 0)
	switch e.Op {
	case eventMessage:
		sh := d.shard(e.Account)
		sh.mu.Lock()
		defer sh.mu.Unlock()
		a := sh.m[e.Account]
		if a == nil {
			a = &account{first: dayNum(at)}
			sh.m[e.Account] = a
		}
		d.record(a, at, e.Rcpts, fingerprint.Family(e.Family))
	case eventAbsorb:
		d.absorb(e.Account, at)
	default:
		return fmt.Errorf("baseline: learned event: unknown operation %q", e.Op)
	}
	return nil
}
