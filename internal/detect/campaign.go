package detect

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mailbrake/mailbrake/internal/campaign"
	"github.com/mailbrake/mailbrake/internal/engine"
	"github.com/mailbrake/mailbrake/internal/leakscan"
	"github.com/mailbrake/mailbrake/internal/verdict"
)

// Reasons of the campaign detector.
const (
	// ReasonCampaignRun: the account sent one fingerprint as many separate
	// messages to people it never wrote to.
	ReasonCampaignRun engine.Reason = "campaign-run"
	// ReasonPhishingRun: the same, fewer, with the vocabulary of
	// credential phishing and a link (colleagues count: internal
	// phishing).
	ReasonPhishingRun engine.Reason = "phishing-run"
	// ReasonCampaignAcrossAccounts: one fingerprint from several accounts
	// of the site in a day, to first-time outside recipients, at the
	// counts of a run, though no account alone reaches them.
	ReasonCampaignAcrossAccounts engine.Reason = "campaign-across-accounts"
	// ReasonNewLinkDomain: links to a host the site's outbound mail never
	// carried before, reaching many first-time recipients in its first
	// day.
	ReasonNewLinkDomain engine.Reason = "new-link-domain"
	// ReasonMarkedSpamText: the message's text is one an admin marked as
	// spam (quarantine spam), from whichever account sends it.
	ReasonMarkedSpamText engine.Reason = "marked-spam-text"
)

// campaignTextLimit bounds the decoded text fingerprinted per message: the
// start of a message is what a run repeats (the fingerprint keeps 4 KiB).
const campaignTextLimit = 6 << 10

// Campaign is the campaign-fingerprint detector. It reads the message's
// content, so it acts on the milter path (the policy path has none), once
// per message; the novelty detector, run before it, says how many of the
// message's recipients are first-time.
type Campaign struct {
	Tracker *campaign.Tracker
	// Learned, when set (cluster mode), is given what the tracker recorded
	// of each message (campaign.MessageEvent, HostsEvent), for the other
	// nodes. It must not block.
	Learned func(event []byte)
	o       CampaignOptions
}

// CampaignOptions configures the Campaign detector.
type CampaignOptions struct {
	DayMessages, DayFirstTime   int
	WeekMessages, WeekFirstTime int
	LureMessages, LureFirstTime int
	// NewLinkFirstTime: a link host new to the site flags the messages
	// carrying it once they reached this many first-time recipients in
	// its first day (0: off). LocalDomains' hosts (and the sender's own
	// domain's) never count.
	NewLinkFirstTime int
	// AcrossAccounts: this many accounts sending one fingerprint in a day
	// are judged together against the day limits (0: off).
	AcrossAccounts int
	LocalDomains   []string
	Action         engine.Action
	Score          int
	DryRun         bool
	// Learning reports that first-time recipients are not known yet (the
	// novelty detector's learning period): findings are dry-run then.
	Learning func(now time.Time) bool
}

// NewCampaign returns a Campaign detector over t.
func NewCampaign(t *campaign.Tracker, o CampaignOptions) *Campaign {
	return &Campaign{Tracker: t, o: o}
}

// Inbound implements engine.Detector.
func (c *Campaign) Inbound(context.Context, *engine.Submission) []engine.Finding { return nil }

// Outbound implements engine.Detector.
func (c *Campaign) Outbound(_ context.Context, sub *engine.Submission) []engine.Finding {
	if sub.Body == nil || sub.Account == engine.Unauthenticated || sub.Reinjected {
		return nil
	}
	newRcpts, newExt := 0, 0
	if sub.Novelty != nil {
		newRcpts, newExt = sub.Novelty.New, sub.Novelty.NewExternal
	}
	p := c.Tracker.Print(sub.Subject, leakscan.Text(bytes.NewReader(sub.Body), campaignTextLimit))
	sub.Prints = p.Strings()
	st := c.Tracker.Observe(sub.Account, p, newRcpts, newExt, sub.Time)
	// Outside first-time recipients only, as for a run: a class list or a
	// newsletter with a new link goes to colleagues.
	hosts := c.foreignHosts(sub, p)
	hn := c.Tracker.ObserveHosts(hosts, newExt, sub.Time)
	if c.Learned != nil {
		if len(p.Keys()) > 0 {
			c.Learned(campaign.MessageEvent(sub.Account, p, newRcpts, newExt, sub.Time))
		}
		if len(hosts) > 0 {
			c.Learned(campaign.HostsEvent(hosts, newExt, sub.Time))
		}
	}
	if c.Tracker.MarkedSpam(p) {
		// An admin saw this text and called it spam: held from any
		// account at once, learning period or not.
		ev := "the text of a message marked as spam"
		if others := c.Tracker.Accounts(p, sub.Time); len(others) > 0 {
			ev += fmt.Sprintf("; sent today by %s", strings.Join(others, ", "))
		}
		return []engine.Finding{{Rule: "campaign", Reason: ReasonMarkedSpamText, Family: verdict.Campaign, Action: c.o.Action, Score: c.o.Score, DryRun: c.o.DryRun, Evidence: ev}}
	}
	if newRcpts == 0 || st.Messages7d == 0 {
		// Only a message that adds first-time recipients is flagged.
		return nil
	}
	if c.Tracker.Trusted(sub.Account, p, sub.Time) {
		return nil // an admin released this account's run of it
	}
	var out []engine.Finding
	if c.o.NewLinkFirstTime > 0 && hn.FirstDayRcpts >= c.o.NewLinkFirstTime {
		out = append(out, c.finding(sub, ReasonNewLinkDomain, fmt.Sprintf(
			"links to a host the site's outbound mail first carried within the last day (%d new in this message), now reaching %d first-time outside recipients (limit %d)",
			hn.New, hn.FirstDayRcpts, c.o.NewLinkFirstTime)))
	}
	what := st.Kind
	var reason engine.Reason
	var limit string
	// A lure run counts every first-time recipient (phishing colleagues);
	// any other run only those outside: a newsletter's first issue to
	// the 250 colleagues of a department is a run of one text too.
	switch {
	case p.Lure && st.Messages24h >= c.o.LureMessages && st.New24h >= c.o.LureFirstTime:
		reason, limit = ReasonPhishingRun, fmt.Sprintf("lure limits %d/%d", c.o.LureMessages, c.o.LureFirstTime)
	case newExt > 0 && st.Messages24h >= c.o.DayMessages && st.External24h >= c.o.DayFirstTime:
		reason, limit = ReasonCampaignRun, fmt.Sprintf("day limits %d/%d", c.o.DayMessages, c.o.DayFirstTime)
	case newExt > 0 && st.Messages7d >= c.o.WeekMessages && st.External7d >= c.o.WeekFirstTime:
		reason, limit = ReasonCampaignRun, fmt.Sprintf("week limits %d/%d", c.o.WeekMessages, c.o.WeekFirstTime)
	case newExt > 0 && st.Accounts24h >= c.o.AcrossAccounts && st.SiteMessages24h >= c.o.DayMessages && st.SiteExternal24h >= c.o.DayFirstTime:
		reason, limit = ReasonCampaignAcrossAccounts, fmt.Sprintf("site-wide today: %d accounts, %d messages, %d first-time outside recipients; day limits %d/%d",
			st.Accounts24h, st.SiteMessages24h, st.SiteExternal24h, c.o.DayMessages, c.o.DayFirstTime)
	default:
		return out
	}
	ev := fmt.Sprintf("same %s: messages_24h=%d first_time_24h=%d (external %d) messages_7d=%d first_time_7d=%d (external %d) (%s)", what,
		st.Messages24h, st.New24h, st.External24h, st.Messages7d, st.New7d, st.External7d, limit)
	if p.Lure {
		ev += " lure"
	}
	if st.Accounts24h > 1 {
		ev += fmt.Sprintf("; %d accounts sent it today: %s", st.Accounts24h, strings.Join(c.Tracker.Accounts(p, sub.Time), ", "))
	}
	return append(out, c.finding(sub, reason, ev))
}

// finding is a campaign finding, dry-run while the installation learns.
func (c *Campaign) finding(sub *engine.Submission, reason engine.Reason, ev string) engine.Finding {
	dry := c.o.DryRun
	if c.o.Learning != nil && c.o.Learning(sub.Time) {
		dry, ev = true, ev+" (learning)"
	}
	return engine.Finding{Rule: "campaign", Reason: reason, Family: verdict.Campaign, Action: c.o.Action, Score: c.o.Score, DryRun: dry, Evidence: ev}
}

// foreignHosts are the message's link hosts outside the site: not the
// sender's own domain, nor a local domain, nor a subdomain or parent of
// one of them.
func (c *Campaign) foreignHosts(sub *engine.Submission, p campaign.Print) []uint64 {
	own := []string{domain(sub.Account), domain(sub.Sender)}
	own = append(own, c.o.LocalDomains...)
	var out []uint64
	for i, h := range p.HostNames {
		local := false
		for _, d := range own {
			if d != "" && (h == d || strings.HasSuffix(h, "."+d) || strings.HasSuffix(d, "."+h)) {
				local = true
				break
			}
		}
		if !local && i < len(p.Hosts) {
			out = append(out, p.Hosts[i])
		}
	}
	return out
}
