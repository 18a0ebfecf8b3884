package baseline

import (
	"context"
	"fmt"
	"hash/maphash"
	"slices"
	"sync"
	"time"

	"github.com/mailbrake/mailbrake/internal/engine"
	"github.com/mailbrake/mailbrake/internal/fingerprint"
	"github.com/mailbrake/mailbrake/internal/verdict"
)

// Reasons reported by the detector.
const (
	ReasonAboveBaselineHour engine.Reason = "above-baseline-hour"
	ReasonAboveBaselineDay  engine.Reason = "above-baseline-day"
	ReasonNewClientFamily   engine.Reason = "new-client-family"
)

// Options configures the detector.
type Options struct {
	Days           int     // history kept, default 28
	Factor         float64 // default 4
	FloorHour      int     // recipients in an hour never flagged below this (default 100)
	FloorDay       int     // recipients in a day never flagged below this (default 300)
	MinHistoryDays int     // days of history before the learned normal is used (default 7)
	Action         engine.Action
	Score          int
	DryRun         bool
	// NewClient: a family not seen in the account's history, on a message
	// with at least NewClientMinRcpts recipients.
	NewClientAction   engine.Action
	NewClientScore    int
	NewClientMinRcpts int
	NewClientDryRun   bool
	// Learning, when set, reports a new installation still learning at
	// the given time (novelty.learning): every finding is dry-run then,
	// as every account's normal is still unknown.
	Learning func(time.Time) bool
}

type day struct {
	num      int32 // days since the Unix epoch
	rcpts    uint32
	msgs     uint32
	peakHour uint32 // most recipients in one hour of this day
	curHour  int32  // hour of day of hourRcpts
	hourRcpt uint32
}

type account struct {
	// days with mail, oldest first, none older than the history's
	// length: an account that wrote on two days costs two entries, not
	// the history's 28.
	days     []day
	first    int32 // first day seen
	families []fingerprint.Family
	dirty    bool
	// reviewed is a burst an admin judged legitimate: until the day
	// reviewedUntil the account's limits are at least its peak hour and
	// day.
	reviewedUntil             int32
	reviewedHour, reviewedDay uint32
}

type shard struct {
	mu   sync.Mutex
	m    map[string]*account
	gone map[string]struct{} // forgotten since the last Dirty
}

// Detector is the baseline detector. Safe for concurrent use.
type Detector struct {
	o      Options
	seed   maphash.Seed
	shards [32]shard

	// Learned, when set (cluster mode), is given every message this
	// detector records and every burst absorbed, encoded for ApplyLearned
	// on the other nodes. Set before the first message; it must not block.
	Learned func(event []byte)
}

var _ engine.Detector = (*Detector)(nil)

// New returns a detector with no history.
func New(o Options) *Detector {
	if o.Days <= 0 {
		o.Days = 28
	}
	o.Days = min(o.Days, 366)
	if o.Factor <= 0 {
		o.Factor = 4
	}
	if o.FloorHour <= 0 {
		o.FloorHour = 100
	}
	if o.FloorDay <= 0 {
		o.FloorDay = 300
	}
	if o.MinHistoryDays <= 0 {
		o.MinHistoryDays = 7
	}
	if o.NewClientMinRcpts <= 0 {
		o.NewClientMinRcpts = 10
	}
	d := &Detector{o: o, seed: maphash.MakeSeed()}
	for i := range d.shards {
		d.shards[i].m = map[string]*account{}
	}
	return d
}

// Normal is an account's learned normal.
type Normal struct {
	HistoryDays   int      `json:"history_days"`
	DayRcpts      float64  `json:"day_recipients_median"`
	PeakHourRcpts float64  `json:"peak_hour_recipients_p90"`
	TodayRcpts    int      `json:"today_recipients"`
	HourRcpts     int      `json:"hour_recipients"`
	Families      []string `json:"client_families"`
}

func (d *Detector) shard(a string) *shard { return &d.shards[maphash.String(d.seed, a)%32] }

func dayNum(t time.Time) int32 { return int32(t.Unix() / 86400) }

// find returns day n's entry, or nil.
func (a *account) find(n int32) *day {
	for i := len(a.days) - 1; i >= 0 && a.days[i].num >= n; i-- {
		if a.days[i].num == n {
			return &a.days[i]
		}
	}
	return nil
}

// slot returns day n's entry, adding it and forgetting days that fall out
// of a history of keep days. A day already out of the history (a late
// message) gets an entry that is not kept.
func (a *account) slot(n int32, keep int) *day {
	if s := a.find(n); s != nil {
		return s
	}
	newest := n
	if k := len(a.days); k > 0 {
		newest = max(newest, a.days[k-1].num)
	}
	cut := newest - int32(keep) // days at or before cut are forgotten
	if n <= cut {
		return &day{num: n, curHour: -1}
	}
	i := 0
	for i < len(a.days) && a.days[i].num <= cut {
		i++
	}
	if i > 0 {
		a.days = a.days[:copy(a.days, a.days[i:])]
	}
	if len(a.days) == cap(a.days) {
		// Grow in small steps up to the history's length: most accounts
		// write on few days.
		grown := make([]day, len(a.days), min(keep, max(2, 2*cap(a.days))))
		copy(grown, a.days)
		a.days = grown
	}
	j := len(a.days)
	for j > 0 && a.days[j-1].num > n {
		j--
	}
	a.days = slices.Insert(a.days, j, day{num: n, curHour: -1})
	return &a.days[j]
}

// normal computes the learned normal from the days before today.
func (d *Detector) normal(a *account, today int32, withFamilies bool) Normal {
	var dayBuf, peakBuf [64]float64 // Days is at most 366; small histories stay on the stack
	dayVals, peakVals := dayBuf[:0], peakBuf[:0]
	for n := today - int32(d.o.Days) + 1; n < today; n++ {
		if n < a.first {
			continue
		}
		if s := a.find(n); s != nil {
			dayVals = append(dayVals, float64(s.rcpts))
			peakVals = append(peakVals, float64(s.peakHour))
		} else {
			dayVals = append(dayVals, 0)
			peakVals = append(peakVals, 0)
		}
	}
	nm := Normal{HistoryDays: len(dayVals), DayRcpts: quantile(dayVals, 0.5), PeakHourRcpts: quantile(peakVals, 0.9)}
	if withFamilies {
		for _, f := range a.families {
			nm.Families = append(nm.Families, string(f))
		}
	}
	return nm
}

func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[int(q*float64(len(v)-1)+0.5)]
}

// Learns implements engine.Learner: every outbound message is recorded,
// once per queue ID.
func (d *Detector) Learns() bool { return true }

// Inbound implements engine.Detector; inbound mail teaches nothing here.
func (d *Detector) Inbound(context.Context, *engine.Submission) []engine.Finding { return nil }

// Outbound implements engine.Detector: record the message and compare the
// account's current hour and day with its normal.
func (d *Detector) Outbound(_ context.Context, sub *engine.Submission) []engine.Finding {
	sh := d.shard(sub.Account)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	a := sh.m[sub.Account]
	today := dayNum(sub.Time)
	if a == nil {
		a = &account{first: today}
		sh.m[sub.Account] = a
	}
	nm := d.normal(a, today, false)
	hadFamilies := len(a.families) > 0
	known := slices.Contains(a.families, sub.Client.Family)
	hadHistory := nm.HistoryDays >= d.o.MinHistoryDays

	s := d.record(a, sub.Time, sub.RecipientCount, sub.Client.Family)
	if d.Learned != nil {
		d.Learned(encodeEvent(event{Op: eventMessage, Account: sub.Account, At: sub.Time.Unix(), Rcpts: max(sub.RecipientCount, 0), Family: string(sub.Client.Family)}))
	}

	var out []engine.Finding
	limitHour, limitDay := float64(d.o.FloorHour), float64(d.o.FloorDay)
	if hadHistory {
		limitHour = max(limitHour, d.o.Factor*nm.PeakHourRcpts)
		limitDay = max(limitDay, d.o.Factor*nm.DayRcpts)
	}
	if a.reviewedUntil >= today {
		// A reviewed burst is part of the account's normal (a newsletter
		// released once is not held again for the same size).
		limitHour = max(limitHour, float64(a.reviewedHour))
		limitDay = max(limitDay, float64(a.reviewedDay))
	}
	if float64(s.hourRcpt) > limitHour {
		out = append(out, engine.Finding{Rule: "baseline", Reason: ReasonAboveBaselineHour, Family: verdict.Volume, Action: d.o.Action, Score: d.o.Score, DryRun: d.o.DryRun,
			Evidence: fmt.Sprintf("hour_recipients=%d limit=%.0f (p90 peak hour %.0f over %d days)", s.hourRcpt, limitHour, nm.PeakHourRcpts, nm.HistoryDays)})
	}
	if float64(s.rcpts) > limitDay {
		out = append(out, engine.Finding{Rule: "baseline", Reason: ReasonAboveBaselineDay, Family: verdict.Volume, Action: d.o.Action, Score: d.o.Score, DryRun: d.o.DryRun, Day: true,
			Evidence: fmt.Sprintf("day_recipients=%d limit=%.0f (median day %.0f over %d days)", s.rcpts, limitDay, nm.DayRcpts, nm.HistoryDays)})
	}
	if len(out) > 0 && sub.Novelty != nil && sub.Novelty.New == 0 {
		// Volume to people the account already writes to (the second
		// issue of a newsletter) is evidence for review, not a hold: it is
		// scored and reported, and the message goes.
		for i := range out {
			out[i].Action = engine.ActionAllow
			out[i].Evidence += " (known recipients only: evidence, not held)"
		}
	}
	if hadHistory && !known && hadFamilies && sub.Client.Family != fingerprint.FamilyUnknown && sub.RecipientCount >= d.o.NewClientMinRcpts {
		out = append(out, engine.Finding{Rule: "baseline", Reason: ReasonNewClientFamily, Family: verdict.Identity, Action: d.o.NewClientAction, Score: d.o.NewClientScore, DryRun: d.o.NewClientDryRun,
			Evidence: fmt.Sprintf("client_family=%s never used in %d days", sub.Client.Family, nm.HistoryDays)})
	}
	if d.o.Learning != nil && len(out) > 0 && d.o.Learning(sub.Time) {
		for i := range out {
			if !out[i].DryRun {
				out[i].DryRun = true
				out[i].Evidence += " (learning)"
			}
		}
	}
	return out
}

// record adds a message at at to account a's day and hour, and its
// client family to the account's; it returns the day. A message of an
// hour before the day's current one (another node's, arriving late)
// counts for the day only.
func (d *Detector) record(a *account, at time.Time, rcpts int, family fingerprint.Family) *day {
	s := a.slot(dayNum(at), d.o.Days)
	hour := int32(at.UTC().Hour())
	n := uint32(max(rcpts, 0))
	switch {
	case s.curHour == hour:
		s.hourRcpt += n
	case s.curHour < hour:
		s.curHour, s.hourRcpt = hour, n
	}
	s.rcpts += n
	s.msgs++
	s.peakHour = max(s.peakHour, s.hourRcpt)
	a.dirty = true
	if !slices.Contains(a.families, family) && family != fingerprint.FamilyUnknown {
		if len(a.families) < 16 {
			a.families = append(a.families, family)
		}
	}
	return s
}

// Absorb makes the burst of account's day at into its normal for the
// history's length (Days): an admin reviewed a message held for it and
// judged it legitimate (release and trust, a dismissed incident). Nothing
// happens when the day is no longer remembered.
func (d *Detector) Absorb(account string, at time.Time) {
	d.absorb(account, at)
	if d.Learned != nil {
		d.Learned(encodeEvent(event{Op: eventAbsorb, Account: account, At: at.Unix()}))
	}
}

func (d *Detector) absorb(account string, at time.Time) {
	sh := d.shard(account)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	a := sh.m[account]
	if a == nil {
		return
	}
	num := dayNum(at)
	s := a.find(num)
	if s == nil {
		return
	}
	a.reviewedHour = max(a.reviewedHour, s.peakHour)
	a.reviewedDay = max(a.reviewedDay, s.rcpts)
	a.reviewedUntil = max(a.reviewedUntil, num+int32(d.o.Days))
	a.dirty = true
}

// Normal returns an account's learned normal at t (for account show).
func (d *Detector) Normal(account string, t time.Time) (Normal, bool) {
	sh := d.shard(account)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	a := sh.m[account]
	if a == nil {
		return Normal{}, false
	}
	today := dayNum(t)
	nm := d.normal(a, today, true)
	if s := a.find(today); s != nil {
		nm.TodayRcpts = int(s.rcpts)
		if s.curHour == int32(t.UTC().Hour()) {
			nm.HourRcpts = int(s.hourRcpt)
		}
	}
	return nm, true
}

// Forget drops the accounts that sent nothing within the history (Days)
// or within idle when that is shorter (0: the history only), unless a
// reviewed burst still applies: memory for accounts that stopped sending.
// Their stored snapshots are deleted at the next Dirty. It returns how
// many accounts remain.
func (d *Detector) Forget(at time.Time, idle time.Duration) int {
	today := dayNum(at)
	cut := today - int32(d.o.Days) // days at or before cut are out of the history
	if days := int32(idle / (24 * time.Hour)); days > 0 && today-days > cut {
		cut = today - days
	}
	n := 0
	for i := range d.shards {
		sh := &d.shards[i]
		sh.mu.Lock()
		for name, a := range sh.m {
			if k := len(a.days); (k == 0 || a.days[k-1].num <= cut) && a.reviewedUntil < today {
				delete(sh.m, name)
				if sh.gone == nil {
					sh.gone = map[string]struct{}{}
				}
				sh.gone[name] = struct{}{}
			}
		}
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}
