// Package cli is mailbrake's command table: serve, config, quarantine,
// postfix-config, zimbra-config, loadgen and version. Every command other
// than serve, config and the *-config printers is a client of the running
// daemon's admin API; none opens the database.
package cli
