// Package phishmem remembers inbound mail that was tagged as spam or phish
// (its Message-ID, From and Reply-To) for a number of days, so that an
// outbound reply to it — by In-Reply-To/References, or to the remembered
// Reply-To address — is caught even when the user answers from the Junk
// folder. It is an engine.Detector: inbound messages are observed, outbound
// ones checked, and findings carry the reason reply-to-suspected-phish.
//
// Memory is bounded: at most MaxEntries keys (Message-IDs and addresses
// together, about 100 bytes each), expired after the retention; when full,
// the entries closest to expiry are dropped first.
package phishmem
