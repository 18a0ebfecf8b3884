// Package notify tells people and other systems that an incident on a
// mail account happened and what was done about it: mail to the help
// desk, to the admins and (optionally) to the user, a signed JSON
// webhook, and an RFC 5424 syslog line. Each channel is rate-limited per
// incident and per hour, so one flapping incident does not send a
// hundred mails.
//
// It does not decide when to notify (the playbook's notify step and the
// incident lifecycle in internal/ops do), and it imports no other
// mailbrake package: callers map their incident onto Incident.
//
// # Secrets
//
// Nothing here is meant to carry a secret. Incident.Evidence goes as
// given (at most 50 lines of 500 characters) to the help desk, the admins
// and the webhook, so callers must pass masked evidence: never a
// password, a leaked password candidate or a message body. The user mail
// carries no evidence at all, and syslog only the incident's id, account,
// kind, severity, state, reasons and step outcomes. The SMTP password and
// the webhook secret are read from files by New and never logged.
//
// # Mail
//
// Every audience gets one plain-text UTF-8 message (quoted-printable) in
// its own SMTP transaction, through go-smtp's client: STARTTLS as
// configured, AUTH PLAIN only over verified TLS or to a loopback address.
// All mails of one incident carry In-Reply-To and References naming the
// same per-incident id, so mail clients thread them. Auto-Submitted:
// auto-generated (RFC 3834) keeps auto-responders quiet, and
// X-Mailbrake-Incident and X-Mailbrake-Event let the help desk's ticket
// system file them. Header values are built only from fields stripped of
// control characters, so a CR/LF in an account name or reason cannot add
// a header. The bodies come from text/template files (see MessageData);
// TemplatesDir may replace any of helpdesk.txt, admin.txt and user.txt,
// and a template that does not parse or render fails New.
//
// # Webhook
//
// Every event is POSTed as JSON (WebhookPayload) with the headers
//
//	Content-Type: application/json
//	X-Mailbrake-Event: playbook-finished
//	X-Mailbrake-Delivery: 3f2c…           (the same on every retry)
//	X-Mailbrake-Timestamp: 1767323045     (Unix seconds)
//	X-Mailbrake-Signature: sha256=9b1e…   (lower-case hex)
//
// A network error, a 5xx, 408 or 429 answer is retried with exponential
// backoff (1s, 2s, 4s … 30s) up to WebhookConfig.Retries times, bounded
// by the context; any other answer is final. Redirects are not followed.
//
// To verify a request, as with Stripe's and GitHub's webhooks:
//
//  1. Take the raw body, before any JSON decoding, and the timestamp
//     header exactly as sent.
//  2. Compute HMAC-SHA256 with the shared secret over timestamp + "." +
//     body and hex-encode it.
//  3. Compare it in constant time with each sha256= value of the
//     signature header (comma-separated; other schemes are ignored, so
//     more may be added later).
//  4. Reject the request when the timestamp is more than a few minutes
//     (DefaultMaxAge) away from your clock: a captured request cannot be
//     replayed later, because changing the timestamp breaks the
//     signature. To be safe against a replay inside that window, remember
//     X-Mailbrake-Delivery values for as long.
//
// VerifySignature does steps 2 to 4 for Go receivers. In a shell:
//
//	printf '%s.%s' "$timestamp" "$body" | openssl dgst -sha256 -hmac "$secret"
//
// # Syslog
//
// Each event is one RFC 5424 message, formatted here rather than by
// log/syslog, over UDP (one datagram, at most 2048 octets), TCP (RFC
// 6587 octet counting) or a unix datagram socket such as /dev/log:
//
//	<28>1 2026-01-02T03:04:05.000000Z mx1 mailbrake 812 playbook-finished [mailbrake@32473 incident="42" account="alice@example.edu" kind="playbook-finished" severity="high" state="contained" reasons="password-leak"] incident 42 on alice@example.edu: …
package notify
