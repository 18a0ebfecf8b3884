package counter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Backlog is what a Failover counted in this process and has not added
// to the shared counters yet: kept on disk when the node stops during an
// outage (Failover.Backlog) and put back at the next start
// (Failover.Restore), so that the outage's charges still reach the shared
// counters — a node restarted while Redis was down does not forget what
// it counted.
type Backlog struct {
	// Messages are charges under their message keys.
	Messages []BacklogMessage `json:"messages,omitempty"`
	// Minutes are charges without a key, per account and minute.
	Minutes []BacklogMinute `json:"minutes,omitempty"`
}

// BacklogMessage is one message's largest charge.
type BacklogMessage struct {
	Account    string    `json:"account"`
	Key        string    `json:"key"`
	At         time.Time `json:"at"`
	Messages   int64     `json:"messages"`
	Recipients int64     `json:"recipients"`
}

// BacklogMinute is an account's unkeyed charges of one minute.
type BacklogMinute struct {
	Account    string `json:"account"`
	Minute     int64  `json:"minute"` // Unix time / 60
	Messages   int64  `json:"messages"`
	Recipients int64  `json:"recipients"`
}

// Empty reports whether b holds nothing.
func (b Backlog) Empty() bool { return len(b.Messages) == 0 && len(b.Minutes) == 0 }

// Backlog returns what waits for the shared counters. Call it after the
// last charge (at a stop, after WaitReplay).
func (f *Failover) Backlog() Backlog {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b Backlog
	for k, c := range f.keyed {
		b.Messages = append(b.Messages, BacklogMessage{Account: k.acct, Key: k.msgKey, At: c.t, Messages: c.m, Recipients: c.r})
	}
	for k, p := range f.pending {
		b.Minutes = append(b.Minutes, BacklogMinute{Account: k.acct, Minute: k.minute, Messages: p.m, Recipients: p.r})
	}
	return b
}

// Restore puts a backlog a previous process kept back in line for the
// shared counters: the next charge tries them (at once) and, once they
// answer, adds it as it adds an outage's charges. The counts this
// process decides with until then do not include it (they are the
// shared ones, or this process's own).
func (f *Failover) Restore(b Backlog) {
	if b.Empty() {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range b.Messages {
		k := keyedKey{m.Account, m.Key}
		if f.keyed == nil {
			f.keyed = map[keyedKey]*keyedCharge{}
		}
		if c := f.keyed[k]; c != nil {
			c.m, c.r = max(c.m, m.Messages), max(c.r, m.Recipients)
		} else {
			f.keyed[k] = &keyedCharge{t: m.At, m: m.Messages, r: m.Recipients}
		}
	}
	for _, m := range b.Minutes {
		k := pendingKey{m.Account, m.Minute}
		if f.pending == nil {
			f.pending = map[pendingKey]*pendingAmount{}
		}
		p := f.pending[k]
		if p == nil {
			p = &pendingAmount{}
			f.pending[k] = p
		}
		p.m += m.Messages
		p.r += m.Recipients
	}
	if !f.degraded {
		// Counted as an outage that is ending: the next call tries the
		// shared counters and, when they answer, replays the backlog.
		f.degraded = true
		f.nextTry = time.Time{}
		if f.Degraded != nil {
			f.Degraded(true)
		}
	}
}

// Retry tries the shared counters now, with a read of a key no account
// has: when they answer, a restored backlog (or an outage's charges) is
// added at once instead of at this node's next charge, which on a quiet
// node (or for scores, charged only when a message scores) can be hours
// away while the other nodes decide without it.
func (f *Failover) Retry(ctx context.Context) {
	shared, try := f.route()
	if !shared {
		return
	}
	_, err := f.Shared.Peek(ctx, "\x00retry", f.now())
	f.answered(ctx, err, try)
}

// maxBacklogBytes bounds a backlog file read at start (maxKeyed messages
// and a day of minutes for many accounts fit well within it).
const maxBacklogBytes = 256 << 20

// DecodeBacklog reads a backlog file: JSON, every entry with a counter
// key (an account, or an account and a score family) of at most 512
// bytes and no negative amount.
func DecodeBacklog(data []byte) (Backlog, error) {
	var b Backlog
	if len(data) > maxBacklogBytes {
		return b, fmt.Errorf("%d bytes, over %d", len(data), maxBacklogBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return Backlog{}, err
	}
	if dec.More() {
		return Backlog{}, errors.New("data after the backlog")
	}
	for _, m := range b.Messages {
		if !validCounterKey(m.Account) || m.Key == "" || len(m.Key) > 512 || m.Messages < 0 || m.Recipients < 0 || m.At.IsZero() {
			return Backlog{}, fmt.Errorf("a message entry with account %q", m.Account)
		}
	}
	for _, m := range b.Minutes {
		if !validCounterKey(m.Account) || m.Minute <= 0 || m.Messages < 0 || m.Recipients < 0 {
			return Backlog{}, fmt.Errorf("a minute entry with account %q", m.Account)
		}
	}
	return b, nil
}

func validCounterKey(k string) bool { return k != "" && len(k) <= 512 && utf8.ValidString(k) }
