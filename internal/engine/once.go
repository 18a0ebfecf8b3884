package engine

import (
	"context"
)

// Learner is a Detector that learns from every outbound message it sees
// (a baseline, the recipients an account has mailed). When both protocol
// paths see one message (policy at END-OF-MESSAGE and the milter), the
// engine runs a Learner once per message (see message) and gives the other
// path the same findings, so nothing is learned twice. Detectors that only
// look things up run on both paths: the milter path sees headers that the
// policy path does not.
type Learner interface {
	Detector
	// Learns reports whether the detector records the messages it checks.
	Learns() bool
}

// runLearners runs the Learner detectors for sub, or returns what they
// found when the other path already ran them for this message. m is nil
// when the submission cannot be tied to a message (replays): it is then
// its own message.
func (e *Engine) runLearners(ctx context.Context, sub *Submission, m *message) []Finding {
	if m == nil {
		var out []Finding
		for _, d := range e.learners {
			out = append(out, d.Outbound(ctx, sub)...)
		}
		return out
	}
	// The message's lock is held while the learners run, so the two paths
	// of one message cannot both learn from it. Learners are in-memory
	// and fast.
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.didLearn {
		if sub.Novelty == nil {
			sub.Novelty = m.novelty
		}
		return append([]Finding(nil), m.learned...)
	}
	var out []Finding
	for _, d := range e.learners {
		out = append(out, d.Outbound(ctx, sub)...)
	}
	m.didLearn, m.learned, m.novelty = true, out, sub.Novelty
	return out
}
