// Package novelty tracks, per account, which recipients the account has
// mailed and when, so the engine can tell a mailbox writing to its usual
// correspondents from a hijacked one writing to strangers. It is exact and
// bounded, as mox's rate limits are: each account remembers at most
// MaxPerAccount recipients (default 5,000, least recently mailed forgotten
// first) for Lookback (default 90 days; a recipient not mailed for longer is
// first-time again). It reports per message the new, distinct, domain and
// external recipient counts, and per account the first-time recipients of
// the last hour and day (one-minute and ten-minute buckets, as in
// internal/counter) and the distinct recipients last mailed in the last hour
// and day, counted exactly from the recipient table. It knows nothing of the
// protocols, the rules or the store.
//
// Recipients are remembered as a 64-bit SipHash-2-4 of the lower-cased
// address under a 128-bit key, never as addresses. hash/maphash would do
// for a single process, but its seed can neither be set nor saved, so a
// snapshot could not be matched after a restart; SipHash (a few lines,
// checked against the reference vectors) takes a key derived from
// Options.Key, which the daemon reads from a secret file. Snapshots carry a
// key identifier, not the key, and Restore refuses those taken under
// another key. Without a configured key each process draws a random one and
// novelty starts afresh at every restart. At 5,000 recipients per account
// the chance that two of an account's recipients share a hash is about
// 1 in 10^12.
//
// Memory: a remembered recipient costs about 57 bytes (a 24-byte list
// entry, a map slot and growth slack), measured by TestMemory as 10.8 MiB
// for 1,000 accounts of 200 recipients (11 KiB per account). An account at
// the cap holds about 275 KiB, so the worst case is MaxPerAccount × 56
// bytes per active account, plus at most 60 + 144 twelve-byte window
// buckets. Expired recipients are dropped as the account sends and by
// Sweep, which also returns the memory of tables that shrank and forgets
// empty accounts.
package novelty
