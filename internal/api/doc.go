// Package api defines mailbrake's admin API: the request and response types,
// the Methods interface that internal/ops implements, an http.Handler that
// serves Methods as JSON over HTTP, and the Go Client the CLI uses. The CLI
// never opens the database; it calls the running daemon through this API,
// over a unix socket whose file permissions decide who may (as Caddy's CLI
// uses its admin endpoint and mox's its ctl socket).
package api
