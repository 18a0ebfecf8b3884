// Package aprl reads the Anti-Phishing Reply List (APRL, the
// "anti-phishing-email-reply" project's phishing_reply_addresses and
// phishing_cleared_addresses files) and site allow/block lists of
// addresses and domains, and answers "is this address listed?" in
// constant time.
//
// The list format is the one documented in the header of
// phishing_reply_addresses: one ADDRESS,TYPE,DATE line per address, '#'
// comment lines, TYPE a combination of the letters A to E and DATE the
// YYYYMMDD day the address was last seen in a campaign. The cleared file has
// ADDRESS,DATE lines; an address whose cleared date is on or after its
// listing date is dropped, as the project's add-address-to-list.pl does.
// Every TYPE is kept, including E (an address that might receive replies
// without being meant to, usually a hijacked sender): what a listing means
// for a message is the engine's decision, not this package's.
//
// A List is an immutable snapshot; a Watcher rebuilds one when a configured
// file changes and swaps it in atomically, keeping the previous snapshot
// when a file is missing or corrupt.
//
// Package aprl does not decide what to do with a listed address, fetch the
// list over the network, or look inside messages for addresses.
package aprl
