// Package detect builds the engine's detectors from the configuration, in
// one place, so the daemon and replay run exactly the same signals.
package detect

import (
	"fmt"
	"regexp"

	"github.com/mailbrake/mailbrake/internal/baseline"
	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/engine"
	"github.com/mailbrake/mailbrake/internal/phishmem"
)

// Set is the built detectors.
type Set struct {
	Baseline *baseline.Detector // nil when off
	Phish    *phishmem.Memory   // nil when off
}

// All returns the detectors as the engine takes them.
func (s *Set) All() []engine.Detector {
	var out []engine.Detector
	if s.Baseline != nil {
		out = append(out, s.Baseline)
	}
	if s.Phish != nil {
		out = append(out, s.Phish)
	}
	return out
}

// Build builds every enabled detector.
func Build(c *config.Config) (*Set, error) {
	s := &Set{}
	if b := c.Baseline; b.Enabled {
		act, ok1 := engine.ParseAction(b.Verdict)
		nact, ok2 := engine.ParseAction(b.NewClientVerdict)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("baseline: unknown verdict")
		}
		s.Baseline = baseline.New(baseline.Options{Days: b.Days, Factor: b.Factor, FloorHour: b.FloorHour, FloorDay: b.FloorDay,
			MinHistoryDays: b.MinHistoryDays, Action: act, Score: b.Score, DryRun: b.DryRun,
			NewClientAction: nact, NewClientScore: b.NewClientScore, NewClientMinRcpts: b.NewClientMinRcpts})
	}
	if p := c.Phish; p.Enabled {
		act, ok := engine.ParseAction(p.Verdict)
		if !ok {
			return nil, fmt.Errorf("phish.verdict: unknown verdict %q", p.Verdict)
		}
		o := phishmem.Options{Retention: p.Retention.D(), SpamFlag: p.SpamFlag, SubjectTags: p.SubjectTags, Action: act, Score: p.Score, DryRun: p.DryRun}
		for i, h := range p.HeaderMatches {
			re, err := regexp.Compile(h.Matches)
			if err != nil {
				return nil, fmt.Errorf("phish.header_matches[%d]: %w", i, err)
			}
			o.Headers = append(o.Headers, phishmem.HeaderMatch{Header: h.Header, Matches: re})
		}
		s.Phish = phishmem.New(o)
	}
	return s, nil
}
