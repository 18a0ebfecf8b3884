package detect

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mailbrake/mailbrake/internal/engine"
	"github.com/mailbrake/mailbrake/internal/novelty"
	"github.com/mailbrake/mailbrake/internal/verdict"
)

// Reasons of the novelty detector.
const (
	// ReasonFirstTimeRecipientsHour: the account mailed more first-time
	// recipients in the last hour than novelty.first_time_hour.
	ReasonFirstTimeRecipientsHour engine.Reason = "first-time-recipients-hour"
	// ReasonFirstTimeRecipientsDay: the same over the last 24 hours.
	ReasonFirstTimeRecipientsDay engine.Reason = "first-time-recipients-day"
)

// Novelty is the recipient-novelty detector: it records every outbound
// message's recipients in a novelty.Tracker, puts the message's novelty on
// the Submission for the rules, and reports accounts writing to many
// people they never wrote to.
type Novelty struct {
	Tracker *novelty.Tracker
	// Shared, when set (cluster mode), is the memory every node records in
	// instead of Tracker, which then only hashes.
	Shared SharedNovelty
	o      NoveltyOptions
	local  map[string]bool
	logged atomic.Bool
}

// SharedNovelty is a recipient memory shared by the nodes of a cluster
// (internal/novelty/redisnovelty.Failover). ok is false when it cannot
// answer (Redis down): the message is then judged without novelty.
type SharedNovelty interface {
	Observe(ctx context.Context, account string, recipients []string, at time.Time) (st novelty.Stats, ok bool, err error)
	Peek(ctx context.Context, account string, at time.Time) (novelty.Stats, bool)
	Since() time.Time
}

// NoveltyOptions configures the Novelty detector.
type NoveltyOptions struct {
	FirstTimeHour, FirstTimeDay int           // 0: off
	Learning                    time.Duration // findings are dry-run until the tracker has learned this long
	LocalDomains                []string      // empty: the sender's own domain
	Action                      engine.Action
	Score                       int
	DryRun                      bool
	Logger                      *slog.Logger // nil: discarded
}

// NewNovelty returns a Novelty detector over t.
func NewNovelty(t *novelty.Tracker, o NoveltyOptions) *Novelty {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	n := &Novelty{Tracker: t, o: o, local: map[string]bool{}}
	for _, d := range o.LocalDomains {
		n.local[strings.ToLower(strings.TrimSpace(d))] = true
	}
	return n
}

// Learns implements engine.Learner: each message is recorded once.
func (n *Novelty) Learns() bool { return true }

// Inbound implements engine.Detector; mail from outside teaches nothing.
func (n *Novelty) Inbound(context.Context, *engine.Submission) []engine.Finding { return nil }

// Outbound implements engine.Detector.
func (n *Novelty) Outbound(ctx context.Context, sub *engine.Submission) []engine.Finding {
	if sub.Account == engine.Unauthenticated {
		return nil
	}
	var st novelty.Stats
	if n.Shared != nil {
		var ok bool
		var err error
		st, ok, err = n.Shared.Observe(ctx, sub.Account, sub.Recipients, sub.Time)
		if err != nil && !n.logged.Swap(true) {
			n.o.Logger.Error("novelty: the cluster's memory cannot be used; messages are judged without novelty", "err", err)
		}
		if !ok {
			// Nothing known of the account's correspondents here: no
			// novelty facts, rather than every recipient first-time.
			return nil
		}
	} else {
		st = n.Tracker.Observe(sub.Account, sub.Recipients, sub.Time)
	}
	nv := &engine.Novelty{New: st.New, NewExternal: st.NewExternal, Distinct: st.Distinct, Domains: st.Domains, External: n.external(sub),
		FirstTime1h: st.FirstTime1h, FirstTime24h: st.FirstTime24h, Distinct1h: st.Distinct1h, Distinct24h: st.Distinct24h, Tracked: st.Tracked}
	sub.Novelty = nv
	if st.New == 0 {
		// Only a message that adds first-time recipients is flagged: a
		// reply to a known correspondent after a burst is let through.
		return nil
	}
	dry, note := n.o.DryRun, ""
	if n.Learning(sub.Time) {
		// A new installation: every recipient is first-time to it.
		dry, note = true, " (learning)"
	}
	var out []engine.Finding
	if n.o.FirstTimeHour > 0 && st.FirstTime1h > n.o.FirstTimeHour {
		out = append(out, engine.Finding{Rule: "novelty", Reason: ReasonFirstTimeRecipientsHour, Family: verdict.Volume, Action: n.o.Action, Score: n.o.Score, DryRun: dry,
			Evidence: fmt.Sprintf("first_time_recipients_1h=%d limit=%d new=%d%s", st.FirstTime1h, n.o.FirstTimeHour, st.New, note)})
	}
	if n.o.FirstTimeDay > 0 && st.FirstTime24h > n.o.FirstTimeDay {
		out = append(out, engine.Finding{Rule: "novelty", Reason: ReasonFirstTimeRecipientsDay, Family: verdict.Volume, Action: n.o.Action, Score: n.o.Score, DryRun: dry, Day: true,
			Evidence: fmt.Sprintf("first_time_recipients_24h=%d limit=%d new=%d%s", st.FirstTime24h, n.o.FirstTimeDay, st.New, note)})
	}
	return out
}

// Learning reports whether the tracker is still learning at now: for
// novelty.learning after it first saw outbound mail, every recipient is
// first-time to it, so findings built on first-time recipients are
// reported as dry-run.
func (n *Novelty) Learning(now time.Time) bool {
	since := n.Tracker.Since()
	if n.Shared != nil {
		since = n.Shared.Since()
	}
	return since.IsZero() || now.Sub(since) < n.o.Learning
}

// external counts the message's distinct recipients outside the local
// domains (or, with none configured, outside the sender's own domain).
func (n *Novelty) external(sub *engine.Submission) int {
	own := domain(sub.Sender)
	if own == "" {
		own = domain(sub.Account)
	}
	seen := make(map[string]struct{}, len(sub.Recipients))
	ext := 0
	for _, r := range sub.Recipients {
		r = strings.ToLower(r)
		if _, dup := seen[r]; dup {
			continue
		}
		seen[r] = struct{}{}
		d := domain(r)
		if len(n.local) > 0 {
			if !n.local[d] {
				ext++
			}
		} else if d != own {
			ext++
		}
	}
	return ext
}

func domain(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(strings.TrimSuffix(addr[i+1:], ">"))
}
