// Package baseline learns what each account normally sends, from its own
// history, and reports when current sending exceeds that normal by a
// factor: recipients in the current hour against the 90th percentile of the
// account's daily peak hours, and recipients today against the median of
// its daily totals, over the last Days days (zero days count: a quiet
// account's normal is quiet). Percentiles and medians are robust to the
// occasional legitimate burst. New or quiet accounts fall back to absolute
// floors. A client family the account has not used in its history, on a
// message with many recipients, is a finding too.
//
// Memory: an account costs about 40 bytes per day of history (Days, default
// 28, so about 1.2 KiB) plus a few bytes per client family seen.
package baseline
