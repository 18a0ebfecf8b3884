// Package quarantine owns the lifecycle of held messages on top of the
// Postfix hold queue: recording a hold, releasing (postsuper -H, then
// postqueue -i so it is delivered now), deleting (postsuper -d … hold), and
// reconciling the index with the real queue (postqueue -j) so that a
// message released or deleted with postsuper directly, or expired, shows
// that state. Postfix keeps the message durably; this package keeps the
// index. It does not decide what to hold (the engine does) and does not
// write the audit log (ops does, for every admin request).
package quarantine
