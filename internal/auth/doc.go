// Package auth owns who may do what over the network: local users with
// argon2id password hashes, roles and their permissions, browser sessions
// (cookie, CSRF token), API tokens for automation and login rate limits.
// The web UI and the REST API ask it for the Principal of a request and
// check the Permission an operation needs; the admin unix socket keeps its
// own rule (file permissions) and acts as admin.
//
// It does not render pages or serve the API (internal/web does), and it
// stores through the Store interface (internal/store/sqlite implements it).
package auth
