// Package daemon wires mailbrake together and runs it: the store, the
// counters, the engine, the policy and milter servers with their adapters
// (policy→engine and milter→engine live here, so the protocol packages never
// import the engine), the admin socket, the HTTP listener for health and
// metrics, and the periodic reconciliation with the Postfix queue.
package daemon
