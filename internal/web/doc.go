// Package web serves the admin web UI: server-rendered pages (html/template,
// templates and assets embedded) for the quarantine, accounts, incidents,
// the audit log, the cluster's nodes and the effective configuration, with
// sign-in by browser session. Every page says when the records are
// read-only (the daemon's Status).
//
// Every page and every action calls api.Methods, as the JSON API and the CLI
// do, so internal/ops stays the one place where a request becomes a state
// change. Each route names the auth.Permission it needs; state-changing
// requests made with a session carry its CSRF token. The pages work without
// JavaScript (plain forms, POST and redirect); the vendored htmx only
// enhances them (row updates in place, bulk selection).
//
// It does not authenticate users itself (an Authenticator, implemented by
// internal/auth, does), and it does not serve the JSON API: the daemon
// mounts that beside the Handler.
package web
