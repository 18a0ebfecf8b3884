package api

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
)

// AccountBaseline is an account's learned normal (the baseline detector).
type AccountBaseline struct {
	HistoryDays           int      `json:"history_days"`
	DayRecipientsMedian   float64  `json:"day_recipients_median"`
	PeakHourRecipientsP90 float64  `json:"peak_hour_recipients_p90"`
	TodayRecipients       int      `json:"today_recipients"`
	HourRecipients        int      `json:"hour_recipients"`
	ClientFamilies        []string `json:"client_families"`
}

// Summary says the normal in words, one sentence a line.
func (b AccountBaseline) Summary() []string {
	if b.HistoryDays == 0 {
		return []string{"No sending history learned yet."}
	}
	out := []string{
		fmt.Sprintf("Usually %s recipients a day (median of %d days of history).", count(b.DayRecipientsMedian), b.HistoryDays),
		fmt.Sprintf("A busy hour reaches %s recipients (90th percentile).", count(b.PeakHourRecipientsP90)),
		fmt.Sprintf("Today so far: %d recipients, %d in the current hour.", b.TodayRecipients, b.HourRecipients),
	}
	if len(b.ClientFamilies) > 0 {
		out = append(out, "Sends from: "+strings.Join(b.ClientFamilies, ", ")+".")
	}
	return out
}

// AccountScore is the arithmetic behind an account's automatic state: its
// findings' score in the score window, how many messages it comes from,
// each evidence family's share, and the thresholds.
type AccountScore struct {
	Total         int64            `json:"total"`
	Messages      int64            `json:"messages"`
	Families      map[string]int64 `json:"families,omitempty"`
	Window        string           `json:"window"`
	WatchScore    int64            `json:"watch_score"`
	RestrictScore int64            `json:"restrict_score"`
}

// Summary says the arithmetic in words, one sentence a line.
func (s AccountScore) Summary() []string {
	if s.Total == 0 {
		return []string{fmt.Sprintf("No findings scored in the last %s.", s.Window)}
	}
	var fams []string
	for _, f := range slices.Sorted(maps.Keys(s.Families)) {
		fams = append(fams, fmt.Sprintf("%s %d", f, s.Families[f]))
	}
	out := []string{fmt.Sprintf("Score %d in the last %s, from %d %s: %s.", s.Total, s.Window, s.Messages, plural(s.Messages, "message", "messages"), strings.Join(fams, ", "))}
	switch {
	case s.RestrictScore > 0 && s.Total >= s.RestrictScore && s.Messages < 2:
		out = append(out, fmt.Sprintf("At %d it would be restricted, but one message never restricts an account: it stays on watch.", s.RestrictScore))
	case s.RestrictScore > 0 && s.Total < s.RestrictScore:
		out = append(out, fmt.Sprintf("Watch at %d, restricted at %d with evidence from more than one message (volume counts once an hour).", s.WatchScore, s.RestrictScore))
	}
	return out
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// AccountNovelty is what the recipient-novelty detector knows of an
// account: first-time and distinct recipients lately.
type AccountNovelty struct {
	FirstTime1h  int    `json:"first_time_recipients_1h"`
	FirstTime24h int    `json:"first_time_recipients_24h"`
	Distinct1h   int    `json:"distinct_recipients_1h"`
	Distinct24h  int    `json:"distinct_recipients_24h"`
	Known        int    `json:"known_recipients"`
	Tracked      string `json:"tracked_for"`
}

// Summary says it in words, one sentence a line.
func (n AccountNovelty) Summary() []string {
	return []string{
		fmt.Sprintf("Wrote to %d people it had not written to before in the last hour, %d in the last day.", n.FirstTime1h, n.FirstTime24h),
		fmt.Sprintf("Wrote to %d different people in the last hour, %d in the last day.", n.Distinct1h, n.Distinct24h),
		fmt.Sprintf("Remembers %d correspondents (observed for %s).", n.Known, n.Tracked),
	}
}

// count renders a learned number of recipients: whole numbers as such,
// others with one decimal.
func count(f float64) string {
	if f == math.Trunc(f) {
		return fmt.Sprintf("%.0f", f)
	}
	return fmt.Sprintf("%.1f", f)
}
