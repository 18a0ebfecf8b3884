package api

import (
	"fmt"
	"math"
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
