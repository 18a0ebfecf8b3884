package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Webhook request headers. See the package documentation for how a
// receiver verifies them.
const (
	HeaderTimestamp = "X-Mailbrake-Timestamp" // Unix seconds at signing
	HeaderSignature = "X-Mailbrake-Signature" // sha256=<hex HMAC-SHA256(secret, timestamp "." body)>
	HeaderDelivery  = "X-Mailbrake-Delivery"  // random id, the same on every retry of one event
	HeaderEvent     = "X-Mailbrake-Event"     // the event kind
)

// DefaultMaxAge is the signature age VerifySignature accepts when given
// no maxAge: long enough for a retried request and some clock skew, short
// enough that a captured request is soon worthless.
const DefaultMaxAge = 5 * time.Minute

// Errors of VerifySignature.
var (
	ErrBadTimestamp      = errors.New("bad webhook timestamp")
	ErrStaleTimestamp    = errors.New("webhook timestamp outside the accepted window")
	ErrBadSignature      = errors.New("malformed webhook signature header")
	ErrSignatureMismatch = errors.New("webhook signature does not match")
)

// WebhookPayload is the JSON body of a webhook request.
type WebhookPayload struct {
	Kind     string   `json:"kind"`
	Incident Incident `json:"incident"`
	// EvidenceOmitted counts evidence lines beyond the 50 sent.
	EvidenceOmitted int       `json:"evidence_omitted,omitempty"`
	NextSteps       string    `json:"next_steps"`
	SentAt          time.Time `json:"sent_at"`
}

// Backoff between webhook attempts: 1s, 2s, 4s … capped at 30s, so the
// default three retries give up after about 7s plus the attempts.
const (
	backoffBase = time.Second
	backoffMax  = 30 * time.Second
)

// maxResponse bounds what is read of a webhook answer.
const maxResponse = 4 << 10

func (n *Notifier) sendWebhook(ctx context.Context, b bounded) ChannelResult {
	r := ChannelResult{Channel: ChannelWebhook, Recipients: []string{n.s.webhook.redacted}}
	if !n.allow(ChannelWebhook, b) {
		r.Skipped = SkipRateLimited
		return r
	}
	in := b.Incident
	// Empty lists, not null, for receivers in strict languages.
	if in.Reasons == nil {
		in.Reasons = []string{}
	}
	if in.Evidence == nil {
		in.Evidence = []string{}
	}
	if in.Steps == nil {
		in.Steps = []Step{}
	}
	body, err := json.Marshal(WebhookPayload{
		Kind: b.Kind, Incident: in, EvidenceOmitted: b.evidenceOmitted,
		NextSteps: b.NextSteps, SentAt: n.now().UTC(),
	})
	if err != nil {
		r.Err = err
		return r
	}
	delivery := randomID(16)
	for attempt := 0; ; attempt++ {
		retry, err := n.postWebhook(ctx, body, b.Kind, delivery)
		if err == nil {
			r.Sent = true
			return r
		}
		if !retry || attempt >= n.s.webhook.retries || ctx.Err() != nil {
			if attempt > 0 {
				err = fmt.Errorf("after %d attempts: %w", attempt+1, err)
			}
			r.Err = err
			return r
		}
		delay := min(backoffBase<<attempt, backoffMax)
		n.log.Warn("webhook attempt failed; retrying", "incident", b.Incident.ID, "attempt", attempt+1,
			"delay", delay, "err", err)
		if err := n.sleep(ctx, delay); err != nil {
			r.Err = fmt.Errorf("waiting to retry: %w", err)
			return r
		}
	}
}

// postWebhook makes one attempt, signed at the time of the attempt so a
// late retry is not rejected as stale. retry says whether another attempt
// may succeed: network errors, 5xx, 408 and 429 are worth retrying; any
// other answer will not change.
func (n *Notifier) postWebhook(ctx context.Context, body []byte, kind, delivery string) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.s.webhook.url, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	ts := strconv.FormatInt(n.now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "mailbrake")
	req.Header.Set(HeaderEvent, kind)
	req.Header.Set(HeaderDelivery, delivery)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, "sha256="+hex.EncodeToString(sign(n.s.webhook.secret, ts, body)))
	resp, err := n.http.Do(req)
	if err != nil {
		// The URL may carry a token in its query; name the redacted form.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return ctx.Err() == nil, fmt.Errorf("POST %s: %w", n.s.webhook.redacted, err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return false, nil
	}
	err = fmt.Errorf("POST %s: %s", n.s.webhook.redacted, resp.Status)
	if s := oneLine(string(snippet), 200); s != "" {
		err = fmt.Errorf("%w: %s", err, s)
	}
	retry = resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests
	return retry, err
}

// sign is HMAC-SHA256(secret, timestamp "." body).
func sign(secret []byte, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// VerifySignature checks a webhook request as a receiver should:
// timestamp is the X-Mailbrake-Timestamp header, signature the
// X-Mailbrake-Signature header and body the raw request body, before any
// JSON decoding. It fails unless the timestamp is within maxAge of now
// (either way, for clock skew; maxAge <= 0 means DefaultMaxAge) and one of
// the sha256= values in signature is HMAC-SHA256(secret, timestamp "."
// body), compared in constant time. Requests replayed within maxAge pass;
// receivers that must not act twice remember X-Mailbrake-Delivery for
// maxAge.
func VerifySignature(secret []byte, timestamp, signature string, body []byte, maxAge time.Duration, now time.Time) error {
	if len(secret) == 0 {
		return errors.New("empty webhook secret")
	}
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	ts, err := parseTimestamp(timestamp)
	if err != nil {
		return err
	}
	sigs, err := parseSignature(signature)
	if err != nil {
		return err
	}
	want := sign(secret, timestamp, body)
	ok := false
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			ok = true
		}
	}
	if !ok {
		return ErrSignatureMismatch
	}
	// Checked after the MAC, so the error does not tell a forger whether
	// only the time was wrong.
	if age := now.Sub(time.Unix(ts, 0)); age > maxAge || age < -maxAge {
		return fmt.Errorf("%w: signed %s ago, at most %s accepted", ErrStaleTimestamp, age.Round(time.Second), maxAge)
	}
	return nil
}

// parseTimestamp parses the timestamp header: decimal Unix seconds, no
// sign, no spaces, no leading zeros, so that one instant has exactly one
// signed form.
func parseTimestamp(s string) (int64, error) {
	if s == "" || len(s) > 18 || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("%w: %q", ErrBadTimestamp, trimForError(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%w: %q", ErrBadTimestamp, trimForError(s))
		}
	}
	ts, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q", ErrBadTimestamp, trimForError(s))
	}
	return ts, nil
}

// maxSignatures bounds the values in one signature header; a sender
// rotating secrets sends two.
const maxSignatures = 8

// parseSignature parses the signature header: comma-separated scheme=value
// pairs, optional spaces around them. Values of the scheme "sha256" must
// be 64 hex digits; other schemes are skipped so a later version can add
// one without breaking receivers. At least one sha256 value is required.
func parseSignature(h string) ([][]byte, error) {
	if len(h) > 1024 {
		return nil, fmt.Errorf("%w: longer than 1024 bytes", ErrBadSignature)
	}
	var out [][]byte
	parts := strings.Split(h, ",")
	if len(parts) > maxSignatures {
		return nil, fmt.Errorf("%w: more than %d values", ErrBadSignature, maxSignatures)
	}
	for _, p := range parts {
		scheme, value, ok := strings.Cut(strings.Trim(p, " \t"), "=")
		if !ok || scheme == "" {
			return nil, fmt.Errorf("%w: want scheme=value, got %q", ErrBadSignature, trimForError(p))
		}
		if scheme != "sha256" {
			continue
		}
		if len(value) != 2*sha256.Size {
			return nil, fmt.Errorf("%w: sha256 value is not %d hex digits", ErrBadSignature, 2*sha256.Size)
		}
		mac, err := hex.DecodeString(value)
		if err != nil {
			return nil, fmt.Errorf("%w: sha256 value is not hex", ErrBadSignature)
		}
		out = append(out, mac)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no sha256 value", ErrBadSignature)
	}
	return out, nil
}

// formatSignature is the inverse of parseSignature for sha256 values.
func formatSignature(macs [][]byte) string {
	parts := make([]string, len(macs))
	for i, m := range macs {
		parts[i] = "sha256=" + hex.EncodeToString(m)
	}
	return strings.Join(parts, ",")
}

func trimForError(s string) string { return oneLine(s, 40) }
