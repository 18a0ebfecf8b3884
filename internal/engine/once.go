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

// maxOncePerShard bounds the remembered messages (32 shards × 4,096: over
// 200 messages a second for the whole TTL).
const maxOncePerShard = 4096

type onceEntry struct {
	at       time.Time
	findings []Finding
	novelty  *Novelty
}

type onceShard struct {
	m     map[string]*onceEntry
	order []string // insertion order, for expiry
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
	if en, ok := s.once.m[sub.QueueID]; ok && sub.Time.Sub(en.at) < onceTTL {
		if sub.Novelty == nil {
			sub.Novelty = en.novelty
		}
		return append([]Finding(nil), en.findings...)
	}
	var out []Finding
	for _, d := range learners {
		out = append(out, d.Outbound(ctx, sub)...)
	}
	if s.once.m == nil {
		s.once.m = map[string]*onceEntry{}
	}
	for len(s.once.order) > 0 {
		k := s.once.order[0]
		en := s.once.m[k]
		if en != nil && len(s.once.order) < maxOncePerShard && sub.Time.Sub(en.at) < onceTTL {
			break
		}
		delete(s.once.m, k)
		s.once.order = s.once.order[1:]
	}
	s.once.m[sub.QueueID] = &onceEntry{at: sub.Time, findings: out, novelty: sub.Novelty}
	s.once.order = append(s.once.order, sub.QueueID)
	return out
}
