// Package evaluate measures the detectors on real legitimate sending
// history with synthetic compromise campaigns injected: it converts the
// Enron sending metadata in ../shared/data to replay records, injects
// campaigns into some accounts, replays everything through the same engine
// (internal/replay), and reports per campaign the recipients that got
// through before the account was contained, and the share of legitimate
// messages held and of legitimate senders ever restricted. The data stays
// in ../shared; nothing of it is copied into the repository.
package evaluate
