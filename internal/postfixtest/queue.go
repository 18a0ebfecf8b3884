package postfixtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// QueueEntry is one message of `postqueue -j` (postqueue(1), JSON object
// format, Postfix 3.1 and later).
type QueueEntry struct {
	QueueName    string // "incoming", "active", "deferred", "hold" or "maildrop"
	QueueID      string
	ArrivalTime  time.Time // whole seconds
	MessageSize  int64
	ForcedExpire bool
	// Sender is the envelope sender as postqueue prints it: the null
	// sender <> appears as "MAILER-DAEMON".
	Sender     string
	Recipients []QueueRecipient
}

// QueueRecipient is a recipient of a queued message; DelayReason is empty
// until a delivery attempt failed.
type QueueRecipient struct {
	Address     string `json:"address"`
	DelayReason string `json:"delay_reason"`
}

type queueJSON struct {
	QueueName    string           `json:"queue_name"`
	QueueID      string           `json:"queue_id"`
	ArrivalTime  int64            `json:"arrival_time"`
	MessageSize  int64            `json:"message_size"`
	ForcedExpire bool             `json:"forced_expire"`
	Sender       string           `json:"sender"`
	Recipients   []QueueRecipient `json:"recipients"`
}

// ParseQueue parses the output of `postqueue -j`: one JSON object per line.
func ParseQueue(out []byte) ([]QueueEntry, error) {
	var entries []QueueEntry
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), 64*1024*1024) // one line per message, all recipients on it
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var q queueJSON
		if err := json.Unmarshal(line, &q); err != nil {
			return nil, fmt.Errorf("parsing postqueue -j line %q: %w", line, err)
		}
		entries = append(entries, QueueEntry{
			QueueName:    q.QueueName,
			QueueID:      q.QueueID,
			ArrivalTime:  time.Unix(q.ArrivalTime, 0),
			MessageSize:  q.MessageSize,
			ForcedExpire: q.ForcedExpire,
			Sender:       q.Sender,
			Recipients:   q.Recipients,
		})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading postqueue -j: %w", err)
	}
	return entries, nil
}

// Queue returns every message in the instance's queue.
func (in *Instance) Queue(t testing.TB) []QueueEntry {
	t.Helper()
	q, err := in.queue()
	if err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
	return q
}

func (in *Instance) queue() ([]QueueEntry, error) {
	cmd := in.Command("postqueue", "-j")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("postqueue -j: %w: %s", err, stderr.Bytes())
	}
	return ParseQueue(out)
}

// Held returns the messages in the hold queue.
func (in *Instance) Held(t testing.TB) []QueueEntry {
	t.Helper()
	return inQueue(in.Queue(t), "hold")
}

func inQueue(q []QueueEntry, name string) []QueueEntry {
	var out []QueueEntry
	for _, e := range q {
		if e.QueueName == name {
			out = append(out, e)
		}
	}
	return out
}

// WaitHeld waits until the hold queue has at least n messages and returns
// them; it fails the test after timeout.
func (in *Instance) WaitHeld(t testing.TB, n int, timeout time.Duration) []QueueEntry {
	t.Helper()
	var held []QueueEntry
	in.waitQueue(t, timeout, fmt.Sprintf("%d held messages", n), func(q []QueueEntry) bool {
		held = inQueue(q, "hold")
		return len(held) >= n
	})
	return held
}

// WaitQueueEmpty waits until no message is queued, held ones included; it
// fails the test after timeout.
func (in *Instance) WaitQueueEmpty(t testing.TB, timeout time.Duration) {
	t.Helper()
	in.waitQueue(t, timeout, "an empty queue", func(q []QueueEntry) bool { return len(q) == 0 })
}

// WaitQueue waits until done accepts the queue and returns that queue; it
// fails the test after timeout.
func (in *Instance) WaitQueue(t testing.TB, timeout time.Duration, done func([]QueueEntry) bool) []QueueEntry {
	t.Helper()
	var got []QueueEntry
	in.waitQueue(t, timeout, "the queue condition", func(q []QueueEntry) bool {
		got = q
		return done(q)
	})
	return got
}

// waitQueue polls postqueue -j (about 15 ms a call) until done.
func (in *Instance) waitQueue(t testing.TB, timeout time.Duration, what string, done func([]QueueEntry) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		q, err := in.queue()
		if err != nil {
			t.Fatalf("postfixtest: %v", err)
		}
		if done(q) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("postfixtest: waited %v for %s; queue: %s", timeout, what, summarize(q))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func summarize(q []QueueEntry) string {
	if len(q) == 0 {
		return "empty"
	}
	var b bytes.Buffer
	for _, e := range q {
		fmt.Fprintf(&b, "\n  %s %s from=<%s> %d rcpts", e.QueueName, e.QueueID, e.Sender, len(e.Recipients))
		for _, r := range e.Recipients {
			if r.DelayReason != "" {
				fmt.Fprintf(&b, " (%s: %s)", r.Address, r.DelayReason)
				break
			}
		}
	}
	return b.String()
}

// Flush runs `postqueue -f`: qmgr tries all deferred and incoming mail now,
// whatever its retry time; held mail stays held. A message whose previous
// delivery agent has not yet closed it is parked for 60s instead (maillog:
// "skipped, still being delivered"); a second Flush picks it up.
func (in *Instance) Flush(t testing.TB) {
	t.Helper()
	in.Run(t, "postqueue", "-f")
}

// FlushUntilEmpty flushes the queue and waits for it to empty, flushing
// again every two seconds, and fails the test after timeout. Right after
// a reload a flush can be lost: postqueue -f moves the deferred mail to
// the incoming queue and wakes the queue manager, and a wake-up that the
// exiting queue manager takes, after its successor's start-up scan, leaves
// the mail in incoming until the next periodic scan (queue_run_delay).
func (in *Instance) FlushUntilEmpty(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		in.Flush(t)
		for next := time.Now().Add(2 * time.Second); time.Now().Before(next); time.Sleep(50 * time.Millisecond) {
			q, err := in.queue()
			if err != nil {
				t.Fatalf("postfixtest: %v", err)
			}
			if len(q) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("postfixtest: flushed for %v and the queue is not empty: %s", timeout, summarize(q))
			}
		}
	}
}
