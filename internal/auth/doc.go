// Package auth owns who may do what over the network: local users with
// argon2id password hashes, roles and their permissions, browser sessions
// (cookie, CSRF token), API tokens for automation and login rate limits.
// The web UI and the REST API ask it for the Principal of a request and
// check the Permission an operation needs; the admin unix socket keeps its
// own rule (file permissions) and acts as admin.
//
// Users, API tokens and sessions live in the records store (the Store
// interface: internal/store/sqlite, or internal/store/postgres shared by
// the nodes of a cluster), sessions by the SHA-256 of their ID: every
// node knows each session, and one ended on any node — signed out, or its
// user removed or changed — is refused on all of them at its next request.
// Login failures are counted in each node's memory.
//
// It does not render pages or serve the API (internal/web does).
package auth
