package detect

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/mailbrake/mailbrake/internal/engine"
	"github.com/mailbrake/mailbrake/internal/origin"
	"github.com/mailbrake/mailbrake/internal/verdict"
)

// Reasons of the origin detector.
const (
	// ReasonNewOrigin: the message came from a network the account never
	// used within the lookback (evidence).
	ReasonNewOrigin engine.Reason = "new-origin"
	// ReasonSharedOrigin: the address that submitted it was new to several
	// accounts within a day: one server working through phished
	// accounts.
	ReasonSharedOrigin engine.Reason = "shared-origin"
)

// Origin is the origin detector. It acts on the milter path, once per
// message (the milter sees the relay's X-Originating-IP as well as the
// SASL client).
type Origin struct {
	Tracker *origin.Tracker
	// Learned, when set (cluster mode), is given each origin the tracker
	// records (origin.Event), for the other nodes. It must not block.
	Learned func(event []byte)
	o       OriginOptions
}

// OriginOptions configures the Origin detector.
type OriginOptions struct {
	Site           []netip.Prefix
	NewPrefixScore int
	SharedAccounts int
	SharedScore    int
	SharedAction   engine.Action
	// Learning: the installation is still learning (every origin is new).
	Learning func(time.Time) bool
}

// NewOrigin returns an Origin detector over t.
func NewOrigin(t *origin.Tracker, o OriginOptions) *Origin { return &Origin{Tracker: t, o: o} }

// Inbound implements engine.Detector.
func (d *Origin) Inbound(context.Context, *engine.Submission) []engine.Finding { return nil }

// Outbound implements engine.Detector.
func (d *Origin) Outbound(_ context.Context, sub *engine.Submission) []engine.Finding {
	a := sub.Origin
	if sub.Path != engine.PathMilter || sub.Reinjected || sub.Account == engine.Unauthenticated || !a.IsValid() ||
		a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsUnspecified() {
		return nil
	}
	for _, p := range d.o.Site {
		if p.Contains(a) {
			return nil
		}
	}
	st := d.Tracker.Observe(sub.Account, a, sub.Time)
	if d.Learned != nil {
		d.Learned(origin.Event(sub.Account, a, sub.Time))
	}
	dry := d.o.Learning != nil && d.o.Learning(sub.Time)
	note := ""
	if dry {
		note = " (learning)"
	}
	var out []engine.Finding
	if st.NewTo >= d.o.SharedAccounts {
		var others []string
		for _, acc := range st.Accounts {
			if acc != sub.Account {
				others = append(others, acc)
			}
		}
		out = append(out, engine.Finding{Rule: "origin", Reason: ReasonSharedOrigin, Family: verdict.Identity, Action: d.o.SharedAction, Score: d.o.SharedScore, DryRun: dry,
			Evidence: fmt.Sprintf("origin %s was new to %d accounts within a day; other accounts from this origin: %s%s", origin.Prefix(a), st.NewTo, strings.Join(others, ", "), note)})
	} else if st.NewPrefix && d.o.NewPrefixScore > 0 {
		out = append(out, engine.Finding{Rule: "origin", Reason: ReasonNewOrigin, Family: verdict.Identity, Action: engine.ActionAllow, Score: d.o.NewPrefixScore, DryRun: dry,
			Evidence: fmt.Sprintf("origin network %s never used by the account (it used %d others)%s", origin.Prefix(a), st.Known, note)})
	}
	return out
}
