package engine

import (
	"context"
	"time"
)

// Learner is a Detector that learns from every outbound message it sees
// (a baseline, the recipients an account has mailed). When both protocol
// paths see one message (policy at END-OF-MESSAGE and the milter, with the
// same Postfix queue ID), the engine runs a Learner once and gives the
// other path the same findings, so nothing is learned twice. Detectors that
// only look things up run on both paths: the milter path sees headers that
// the policy path does not.
type Learner interface {
	Detector
	// Learns reports whether the detector records the messages it checks.
	Learns() bool
}

// onceTTL: both paths decide one message within the SMTP transaction, well
// within Postfix's 300 s timeouts; keep the first path's results this long.
const onceTTL = 10 * time.Minute

// maxOncePerShard bounds the remembered messages: a shard keeps two
// generations of up to this many (32 shards × 2 × 2,048: the last 65,536
// to 131,072 messages, minutes of traffic at hundreds a second).
const maxOncePerShard = 2048

type onceEntry struct {
	at       time.Time
	findings []Finding
	novelty  *Novelty
}

// onceShard keeps two generations of maps: entries go into cur; when cur
// is full it becomes prev and a new cur starts. Nothing is deleted one by
// one, so the maps never fill with tombstones.
type onceShard struct {
	cur, prev map[string]onceEntry
}

func (o *onceShard) get(k string) (onceEntry, bool) {
	if en, ok := o.cur[k]; ok {
		return en, true
	}
	en, ok := o.prev[k]
	return en, ok
}

func (o *onceShard) put(k string, en onceEntry) {
	if o.cur == nil || len(o.cur) >= maxOncePerShard {
		o.prev, o.cur = o.cur, make(map[string]onceEntry, maxOncePerShard)
	}
	o.cur[k] = en
}

// runLearners runs the Learner detectors for sub, or returns what they
// found when the other path already ran them for this queue ID.
func (e *Engine) runLearners(ctx context.Context, sub *Submission, learners []Detector) []Finding {
	if sub.QueueID == "" {
		var out []Finding
		for _, d := range learners {
			out = append(out, d.Outbound(ctx, sub)...)
		}
		return out
	}
	s := e.instanceShard(sub.QueueID)
	// The shard lock is held while the learners run, so the two paths of
	// one message cannot both learn from it. Learners are in-memory and
	// fast; the policy path's RCPT bookkeeping shares these shards.
	s.mu.Lock()
	defer s.mu.Unlock()
	if en, ok := s.once.get(sub.QueueID); ok && sub.Time.Sub(en.at) < onceTTL {
		if sub.Novelty == nil {
			sub.Novelty = en.novelty
		}
		return append([]Finding(nil), en.findings...)
	}
	var out []Finding
	for _, d := range learners {
		out = append(out, d.Outbound(ctx, sub)...)
	}
	s.once.put(sub.QueueID, onceEntry{at: sub.Time, findings: out, novelty: sub.Novelty})
	return out
}
