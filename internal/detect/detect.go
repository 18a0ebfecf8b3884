// Package detect builds the engine's detectors from the configuration, in
// one place, so the daemon and replay run exactly the same signals.
package detect

import (
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"slices"
	"time"

	"github.com/mailbrake/mailbrake/internal/baseline"
	"github.com/mailbrake/mailbrake/internal/campaign"
	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/engine"
	"github.com/mailbrake/mailbrake/internal/novelty"
	"github.com/mailbrake/mailbrake/internal/origin"
	"github.com/mailbrake/mailbrake/internal/phishmem"
	"github.com/mailbrake/mailbrake/internal/verdict"
)

// Set is the built detectors.
type Set struct {
	Novelty  *Novelty           // nil when off
	Campaign *Campaign          // nil when off (or novelty off)
	Origin   *Origin            // nil when off (or novelty off)
	Baseline *baseline.Detector // nil when off
	Phish    *phishmem.Memory   // nil when off
	Phishers *Phishers          // nil without lists
	Identity *Identity          // always on
}

// phishTrust is phish.trust_tags as phishmem names it.
var phishTrust = map[config.TrustTags]string{config.TrustAuto: phishmem.TrustAuto, config.TrustReinjection: phishmem.TrustReinjection, config.TrustFirstPass: phishmem.TrustFirstPass}

// Options carries what Build needs beyond the configuration.
type Options struct {
	// NoveltyKey keys the recipient hashes (from novelty.key_file); empty:
	// a random key, for replay and tests.
	NoveltyKey []byte
	Logger     *slog.Logger
}

// All returns the detectors as the engine takes them.
func (s *Set) All() []engine.Detector {
	var out []engine.Detector
	if s.Novelty != nil {
		out = append(out, s.Novelty)
	}
	if s.Baseline != nil {
		out = append(out, s.Baseline)
	}
	if s.Campaign != nil {
		out = append(out, s.Campaign)
	}
	if s.Origin != nil {
		out = append(out, s.Origin)
	}
	if s.Phish != nil {
		out = append(out, s.Phish)
	}
	if s.Phishers != nil {
		out = append(out, s.Phishers)
	}
	if s.Identity != nil {
		out = append(out, s.Identity)
	}
	return out
}

// Build builds every enabled detector.
func Build(c *config.Config, o Options) (*Set, error) {
	s := &Set{}
	// The verdicts were decoded and checked by config.Load.
	s.Identity = NewIdentity(IdentityOptions{Header: c.Identity.AccountHeader, ForgedAction: c.Identity.ForgedVerdict,
		ForgedScore: c.Identity.ForgedScore, MismatchScore: c.Identity.ClientMismatchScore})
	if n := c.Novelty; n.Enabled {
		t := novelty.New(novelty.Options{Lookback: n.Lookback.D(), MaxPerAccount: n.MaxPerAccount, Key: o.NoveltyKey})
		s.Novelty = NewNovelty(t, NoveltyOptions{FirstTimeHour: n.FirstTimeHour, FirstTimeDay: n.FirstTimeDay, Learning: n.Learning.D(),
			LocalDomains: n.LocalDomains, Action: n.Verdict, Score: n.Score, DryRun: n.DryRun, Logger: o.Logger})
	}
	if k := c.Campaign; k.Enabled && s.Novelty != nil {
		t := campaign.New(campaign.Options{Key: o.NoveltyKey, MaxPerAccount: k.MaxPerAccount, MaxSite: k.MaxSite})
		s.Campaign = NewCampaign(t, CampaignOptions{DayMessages: k.DayMessages, DayFirstTime: k.DayFirstTime, WeekMessages: k.WeekMessages,
			WeekFirstTime: k.WeekFirstTime, LureMessages: k.LureMessages, LureFirstTime: k.LureFirstTime, Action: k.Verdict, Score: k.Score, DryRun: k.DryRun,
			NewLinkFirstTime: k.NewLinkFirstTime, AcrossAccounts: k.AcrossAccounts, LocalDomains: c.Novelty.LocalDomains, Learning: s.Novelty.Learning})
	}
	if oc := c.Origin; oc.Enabled && s.Novelty != nil {
		oo := OriginOptions{NewPrefixScore: oc.NewPrefixScore, SharedAccounts: oc.SharedAccounts, SharedScore: oc.SharedScore,
			SharedAction: oc.SharedVerdict, Learning: s.Novelty.Learning}
		for _, n := range oc.SiteNetworks {
			p, err := netip.ParsePrefix(n)
			if err != nil {
				return nil, fmt.Errorf("origin.site_networks: %w", err)
			}
			oo.Site = append(oo.Site, p.Masked())
		}
		s.Origin = NewOrigin(origin.New(origin.Options{Key: o.NoveltyKey, MaxPerAccount: oc.MaxPerAccount, MaxSite: oc.MaxSite}), oo)
	}
	if p := c.Phishers; len(p.Lists) > 0 || len(p.Blocklist) > 0 {
		ph, err := NewPhishers(PhishersOptions{Lists: p.Lists, Cleared: p.Cleared, Blocklist: p.Blocklist, Allowlist: p.Allowlist,
			Action: p.Verdict, Score: p.Score, InboundAction: p.InboundVerdict, DryRun: p.DryRun, Logger: o.Logger})
		if err != nil {
			return nil, fmt.Errorf("phishers: %w", err)
		}
		s.Phishers = ph
	}
	if b := c.Baseline; b.Enabled {
		o := baseline.Options{Days: b.Days, Factor: b.Factor, FloorHour: b.FloorHour, FloorDay: b.FloorDay,
			MinHistoryDays: b.MinHistoryDays, Action: b.Verdict, Score: b.Score, DryRun: b.DryRun,
			NewClientAction: b.NewClientVerdict, NewClientScore: b.NewClientScore, NewClientMinRcpts: b.NewClientMinRcpts}
		if s.Novelty != nil {
			// One learning period for the installation: the baseline's
			// normals are as new as the novelty tracker's recipients.
			o.Learning = s.Novelty.Learning
		}
		s.Baseline = baseline.New(o)
	}
	if p := c.Phish; p.Enabled {
		o := phishmem.Options{Retention: p.Retention.D(), SpamFlag: p.SpamFlag, SubjectTags: p.SubjectTags, Action: p.Verdict, Score: p.Score, DryRun: p.DryRun, TrustTags: phishTrust[p.TrustTags]}
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

// BuiltinReasons are the reasons the engine and the detectors built here
// report, besides those of the configuration's rules and of password-leak
// detection (package pwleak) and admin actions (ops): the catalogue that
// playbook triggers are checked against.
func BuiltinReasons() []engine.Reason {
	out := make([]engine.Reason, 0, len(builtinFamilies))
	for r := range builtinFamilies {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}

// BuiltinFamily is the evidence family of a built-in reason ("" for a
// reason not in the catalogue).
func BuiltinFamily(r engine.Reason) engine.Family { return builtinFamilies[r] }

// builtinFamilies is the catalogue of built-in reasons and their families.
var builtinFamilies = map[engine.Reason]engine.Family{
	engine.ReasonBulkFromScriptedClient:  verdict.Scripted,
	engine.ReasonRateRecipientsHour:      verdict.Volume,
	engine.ReasonRateMessagesHour:        verdict.Volume,
	engine.ReasonRateRecipientsDay:       verdict.Volume,
	engine.ReasonAccountRestricted:       verdict.State,
	engine.ReasonAccountLocked:           verdict.State,
	engine.ReasonEngineError:             verdict.State,
	engine.ReasonIdentityHeaderForged:    verdict.Identity,
	engine.ReasonClientHeaderMismatch:    verdict.Identity,
	ReasonFirstTimeRecipientsHour:        verdict.Volume,
	ReasonFirstTimeRecipientsDay:         verdict.Volume,
	ReasonReplyToPhisher:                 verdict.Phish,
	ReasonCampaignRun:                    verdict.Campaign,
	ReasonPhishingRun:                    verdict.Campaign,
	ReasonMarkedSpamText:                 verdict.Campaign,
	ReasonNewLinkDomain:                  verdict.Campaign,
	ReasonCampaignAcrossAccounts:         verdict.Campaign,
	ReasonNewOrigin:                      verdict.Identity,
	ReasonSharedOrigin:                   verdict.Identity,
	ReasonFromListedPhisher:              verdict.Phish,
	baseline.ReasonAboveBaselineHour:     verdict.Volume,
	baseline.ReasonAboveBaselineDay:      verdict.Volume,
	baseline.ReasonNewClientFamily:       verdict.Identity,
	phishmem.ReasonReplyToSuspectedPhish: verdict.Phish,
}

// Snapshotter is one detector's state as the store keeps it: snapshots
// under a key prefix, changed ones from Dirty, loaded with Restore.
type Snapshotter struct {
	Prefix  string
	Dirty   func() map[string][]byte
	Restore func(map[string][]byte) error
	// Parts and Part, when set, give Dirty a part at a time (a shard of
	// the accounts), so that saving a million accounts never builds one
	// map of all of them.
	Parts func() int
	Part  func(int) map[string][]byte
}

// Forget drops, in every built detector that keeps per-account state, the
// accounts idle past the detector's own window or past idle when that is
// shorter (0: the windows only), and returns how many accounts each keeps
// (by detector) for the log.
func (s *Set) Forget(at time.Time, idle time.Duration) map[string]int {
	out := map[string]int{}
	if s.Baseline != nil {
		out["baseline"] = s.Baseline.Forget(at, idle)
	}
	if s.Novelty != nil {
		out["novelty"] = s.Novelty.Tracker.Forget(at, idle)
	}
	if s.Campaign != nil {
		out["campaign"] = s.Campaign.Tracker.Forget(at, idle)
	}
	if s.Origin != nil {
		out["origin"] = s.Origin.Tracker.Forget(at, idle)
	}
	return out
}

// Snapshotters are the built detectors' snapshots, with the prefixes the
// daemon and `mailbrake learn` store them under.
func (s *Set) Snapshotters() []Snapshotter {
	var out []Snapshotter
	if s.Baseline != nil {
		out = append(out, Snapshotter{"baseline\x00", s.Baseline.Dirty, s.Baseline.Restore, s.Baseline.DirtyParts, s.Baseline.DirtyPart})
	}
	if s.Phish != nil {
		out = append(out, Snapshotter{Prefix: "phish\x00", Dirty: s.Phish.Dirty, Restore: s.Phish.Restore})
	}
	if s.Novelty != nil && s.Novelty.Shared == nil { // shared: kept in Redis
		out = append(out, Snapshotter{"novelty\x00", s.Novelty.Tracker.Dirty, s.Novelty.Tracker.Restore, s.Novelty.Tracker.DirtyParts, s.Novelty.Tracker.DirtyPart})
	}
	if s.Campaign != nil {
		out = append(out, Snapshotter{Prefix: "campaign\x00", Dirty: s.Campaign.Tracker.Dirty, Restore: s.Campaign.Tracker.Restore},
			Snapshotter{Prefix: "campaign-spam\x00", Dirty: s.Campaign.Tracker.SpamDirty, Restore: s.Campaign.Tracker.RestoreSpam},
			Snapshotter{Prefix: "campaign-site\x00", Dirty: s.Campaign.Tracker.HostsDirty, Restore: s.Campaign.Tracker.RestoreHosts})
	}
	if s.Origin != nil {
		out = append(out, Snapshotter{Prefix: "origin\x00", Dirty: s.Origin.Tracker.Dirty, Restore: s.Origin.Tracker.Restore})
	}
	return out
}
