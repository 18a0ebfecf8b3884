// Package counter implements store.Counters in memory: exact per-account
// sliding windows of one hour (one-minute buckets) and one day (five-minute
// buckets), sharded for concurrency, with snapshots so a single node keeps
// its windows across a restart. Cluster installations use the Redis backend
// instead; this package knows nothing of either protocol or of the rules.
//
// Memory: an account costs about 100 bytes plus 12 bytes per non-empty
// bucket, at most 60 + 288 buckets (about 4 KiB) for an account that sends
// every minute of the day; a typical account that sends a few messages an
// hour holds a handful of buckets. Accounts whose windows are empty are
// dropped by Sweep.
package counter
