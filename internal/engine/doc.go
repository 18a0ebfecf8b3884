// Package engine owns the decision: a Submission (who is sending, with
// which client, to whom, at which stage) and the account's counters become
// facts; the rules from the configuration turn facts into Findings with
// stable Reasons; the strongest non-dry-run finding gives the Verdict. It
// also resolves the sending account (Identity) the same way for both
// protocol paths. It does not speak any protocol, does not touch the Postfix
// queue and does not store holds: the daemon adapters do that with the
// Verdict it returns.
package engine
