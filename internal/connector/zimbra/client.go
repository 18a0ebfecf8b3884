package zimbra

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// DefaultTimeout bounds one HTTP round trip. FlushCacheRequest with
	// allServers=1, the fallback of FlushAccountCache, visits every
	// mailbox server and IMAP daemon in turn
	// (FlushCache.flushCacheOnAllServers), which soap-admin.txt warns "can
	// take a long time on systems with lots of servers"; a minute leaves
	// room for that without hanging a playbook step forever.
	DefaultTimeout = 60 * time.Second

	// MaxResponseBytes bounds a response body. The largest answer we ask
	// for is one account with its sieve scripts (zimbraMailSieveScript is
	// capped far below this by zimbraMailSieveScriptMaxSize); 4 MiB is
	// ample and still keeps a misbehaving server from filling memory.
	MaxResponseBytes = 4 << 20

	// tokenRenewMargin: a token is renewed this long before the lifetime
	// AuthResponse granted runs out, so a call never leaves with a token
	// that expires on the way. Both ends of the lifetime are measured on
	// our clock, so only request latency matters, not clock skew.
	tokenRenewMargin = time.Minute

	// suspensionBackoff is how long the Client sends no AuthRequest after
	// the configured endpoint answered HTTP 503 without a SOAP fault.
	// ZimbraInvalidLoginFilter answers so for an IP it has suspended, and
	// reinstates an IP suspended for more than 15 minutes at its next
	// task run, every 5 minutes (ZimbraInvalidLoginFilter.java lines
	// 99–100 and 176–200 at zm-mailbox 2b7f9787c69e; zimbra-attrs.xml
	// lines 8153–8163): 20 minutes after the first 503 the suspension
	// has surely passed. Requests the filter refuses do not prolong it.
	suspensionBackoff = 20 * time.Minute

	// authFailedHold is how long the Client sends no AuthRequest after one
	// failed with account.AUTH_FAILED. Each failure counts towards
	// ZimbraInvalidLoginFilter's limit for the daemon's IP (default 10),
	// and nothing but a suspension resets that count (lines 134–160); the
	// admin password, read once, would fail again. Five minutes keeps a
	// wrong password from adding a failure at every playbook step.
	authFailedHold = 5 * time.Minute
)

// ErrLoginSuspended matches the error of a call that Zimbra's
// ZimbraInvalidLoginFilter refused with HTTP 503, or that the Client held
// back because the filter had refused one shortly before (see
// LoginSuspendedError). Callers should treat it as permanent for now: a
// retry within the next 20 minutes cannot succeed.
var ErrLoginSuspended = errors.New("zimbra: admin access suspended by ZimbraInvalidLoginFilter")

// LoginSuspendedError is an HTTP 503 without a SOAP fault, which Zimbra
// answers to every request from a client IP that has had more than
// zimbraInvalidLoginFilterMaxFailedLogin (default 10) failed logins, for 15
// to 20 minutes (ZimbraInvalidLoginFilter.java lines 107–162 at zm-mailbox
// 2b7f9787c69e), or the Client's refusal to send an AuthRequest before
// that time is surely over. It matches ErrLoginSuspended.
type LoginSuspendedError struct {
	// URL is the endpoint that answered 503.
	URL string
	// Request is the request that got (or would have got) the 503.
	Request string
	// RetryAfter is when the suspension has surely passed.
	RetryAfter time.Time
	// HeldBack is true when the Client did not send the request at all.
	HeldBack bool
}

// Error implements error.
func (e *LoginSuspendedError) Error() string {
	what := e.URL + " answered HTTP 503 without a SOAP fault"
	if e.HeldBack {
		what = e.Request + " not sent: " + e.URL + " answered HTTP 503 without a SOAP fault shortly before"
	}
	return "zimbra: " + what + ", as Zimbra's ZimbraInvalidLoginFilter does for 15 to 20 minutes to every request from a client IP " +
		"after more than zimbraInvalidLoginFilterMaxFailedLogin (default 10) failed logins from it; no AuthRequest will be sent before " +
		e.RetryAfter.UTC().Format(time.RFC3339)
}

// Is makes errors.Is(err, ErrLoginSuspended) true.
func (e *LoginSuspendedError) Is(target error) bool { return target == ErrLoginSuspended }

// errHTTP503 marks an HTTP 503 that carried no SOAP fault.
var errHTTP503 = errors.New("HTTP 503 without a SOAP fault")

// Config configures a Client.
type Config struct {
	// URL is the admin SOAP endpoint, e.g.
	// https://mail.example.edu:7071/service/admin/soap. It must be https:
	// the admin password travels in the first request.
	URL string
	// AdminUser is the admin account name (admin@example.edu).
	AdminUser string
	// AdminPasswordFile holds the admin password; one trailing newline
	// is ignored.
	AdminPasswordFile string
	// CAFile is a PEM bundle of the CAs to trust for URL's certificate;
	// empty means the system roots.
	CAFile string
	// InsecureSkipVerify disables certificate verification. For a lab
	// only.
	InsecureSkipVerify bool
	// Timeout bounds each HTTP round trip; 0 means DefaultTimeout.
	Timeout time.Duration
	// Logger receives one debug line per call (request, account,
	// duration, fault code); nil means slog.Default(). Bodies and
	// passwords are never logged.
	Logger *slog.Logger
	// Now is the clock used for token lifetimes; nil means time.Now.
	Now func() time.Time
}

// Client calls the Zimbra admin SOAP API. It is safe for concurrent use.
type Client struct {
	url      string
	user     string
	password []byte
	http     *http.Client
	log      *slog.Logger
	now      func() time.Time

	authMu  sync.Mutex // held while authenticating, so concurrent calls share one AuthRequest
	mu      sync.Mutex // guards the fields below
	token   string
	expires time.Time
	// suspendedUntil: no AuthRequest before then (ZimbraInvalidLoginFilter).
	suspendedUntil time.Time
	// authFailedUntil and authFailed: the last AuthRequest failed with
	// authFailed; no new one before authFailedUntil.
	authFailedUntil time.Time
	authFailed      error
	// unknownAttrs are the account attributes the server said it does
	// not know (an older version): GetAccount no longer asks for them.
	unknownAttrs map[string]bool
}

// New checks cfg, reads the admin password and CA files, and returns a
// Client. It does not contact the server: the first call authenticates.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	switch {
	case cfg.URL == "":
		return nil, errors.New("zimbra: url: missing")
	case err != nil:
		return nil, fmt.Errorf("zimbra: url: %w", err)
	case u.Scheme != "https" || u.Host == "":
		return nil, fmt.Errorf("zimbra: url: %q is not an https:// URL", cfg.URL)
	case cfg.AdminUser == "":
		return nil, errors.New("zimbra: admin_user: missing")
	case cfg.AdminPasswordFile == "":
		return nil, errors.New("zimbra: admin_password_file: missing")
	}
	pw, err := os.ReadFile(cfg.AdminPasswordFile)
	if err != nil {
		return nil, fmt.Errorf("zimbra: admin_password_file: %w", err)
	}
	pw = bytes.TrimSuffix(pw, []byte("\n"))
	pw = bytes.TrimSuffix(pw, []byte("\r"))
	if len(pw) == 0 {
		return nil, fmt.Errorf("zimbra: admin_password_file: %s is empty", cfg.AdminPasswordFile)
	}

	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.InsecureSkipVerify}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("zimbra: ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("zimbra: ca_file: no PEM certificate in %s", cfg.CAFile)
		}
		tlsConf.RootCAs = pool
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	c := &Client{
		url:      cfg.URL,
		user:     cfg.AdminUser,
		password: pw,
		http: &http.Client{
			Transport: tr,
			Timeout:   timeout,
			// A redirect is never part of the API, and a 307 would resend
			// the body (with a password in it) to wherever it points.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		log: cfg.Logger,
		now: cfg.Now,
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// Close releases idle connections.
func (c *Client) Close() {
	c.http.CloseIdleConnections()
}

// call sends one authenticated request to the configured endpoint and
// decodes the response element respName into out (when out is not nil).
// On AUTH_EXPIRED or AUTH_REQUIRED it authenticates again and retries
// once. secret, when set, is scrubbed from fault reasons.
func (c *Client) call(ctx context.Context, reqName string, req any, target, account, secret string, out any) error {
	return c.callAt(ctx, c.url, reqName, req, target, account, secret, out)
}

// callAt is call to the admin endpoint url, which may be another server's
// than the configured one (the token is valid on every server).
func (c *Client) callAt(ctx context.Context, url, reqName string, req any, target, account, secret string, out any) error {
	respName := strings.TrimSuffix(reqName, "Request") + "Response"
	for attempt := 0; ; attempt++ {
		token, err := c.authToken(ctx)
		if err != nil {
			return err
		}
		body, err := encodeRequest(reqName, req, token, target)
		if err != nil {
			return fmt.Errorf("zimbra: encoding %s: %w", reqName, err)
		}
		raw, err := c.post(ctx, url, reqName, account, body)
		clear(body)
		var f *Fault
		if errors.As(err, &f) {
			f.Reason = redact(f.Reason, secret)
			if attempt == 0 && (f.Code == CodeAuthExpired || f.Code == CodeAuthRequired) {
				c.dropToken(token)
				continue
			}
		}
		if err != nil {
			return err
		}
		if out == nil {
			return nil
		}
		if err := unmarshalElement(raw, respName, out); err != nil {
			return err
		}
		return nil
	}
}

// unmarshalElement decodes raw, the Body element respName, into out;
// *json.RawMessage gets it as is.
func unmarshalElement(raw json.RawMessage, respName string, out any) error {
	if p, ok := out.(*json.RawMessage); ok {
		*p = raw
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%w: %s: %v", errMalformed, respName, err)
	}
	return nil
}

// authToken returns the cached token, or authenticates.
func (c *Client) authToken(ctx context.Context) (string, error) {
	if t := c.cachedToken(); t != "" {
		return t, nil
	}
	c.authMu.Lock()
	defer c.authMu.Unlock()
	if t := c.cachedToken(); t != "" { // another call authenticated meanwhile
		return t, nil
	}
	if err := c.authHeldBack(); err != nil {
		return "", err
	}
	body, err := encodeRequest("AuthRequest", authRequest{JSNS: nsAdmin, Name: c.user, Password: string(c.password)}, "", "")
	if err != nil {
		return "", fmt.Errorf("zimbra: encoding AuthRequest: %w", err)
	}
	start := c.now()
	raw, err := c.post(ctx, c.url, "AuthRequest", c.user, body)
	clear(body)
	if err != nil {
		var f *Fault
		if errors.As(err, &f) {
			f.Reason = redact(f.Reason, string(c.password))
		}
		err = fmt.Errorf("zimbra: authenticating as %s: %w", c.user, err)
		if errors.Is(err, ErrAuthFailed) {
			c.mu.Lock()
			c.authFailedUntil, c.authFailed = c.now().Add(authFailedHold), err
			c.mu.Unlock()
		}
		return "", err
	}
	var ar authResponse
	if err := unmarshalElement(raw, "AuthResponse", &ar); err != nil {
		return "", err
	}
	if ar.AuthToken == "" {
		return "", fmt.Errorf("%w: AuthResponse without authToken", errMalformed)
	}
	lifetime, err := strconv.ParseInt(string(ar.Lifetime), 10, 64)
	if err != nil || lifetime <= 0 {
		return "", fmt.Errorf("%w: AuthResponse lifetime %q", errMalformed, string(ar.Lifetime))
	}
	c.mu.Lock()
	c.token = string(ar.AuthToken)
	c.expires = start.Add(time.Duration(lifetime)*time.Millisecond - tokenRenewMargin)
	c.mu.Unlock()
	return string(ar.AuthToken), nil
}

// authHeldBack returns why no AuthRequest may be sent now, or nil.
func (c *Client) authHeldBack() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if now.Before(c.suspendedUntil) {
		return &LoginSuspendedError{URL: c.url, Request: "AuthRequest", RetryAfter: c.suspendedUntil, HeldBack: true}
	}
	if now.Before(c.authFailedUntil) {
		return fmt.Errorf("%w (AuthRequest not sent again before %s: each failure counts towards ZimbraInvalidLoginFilter's limit)",
			c.authFailed, c.authFailedUntil.UTC().Format(time.RFC3339))
	}
	return nil
}

// noteSuspension records a 503 from url and returns when the suspension
// has surely passed. Only the configured endpoint, where AuthRequest
// goes, holds AuthRequests back; a first 503 starts the wait, later ones
// within it do not prolong it (the filter's do not either).
func (c *Client) noteSuspension(url string) time.Time {
	now := c.now()
	if url != c.url {
		return now.Add(suspensionBackoff)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !now.Before(c.suspendedUntil) {
		c.suspendedUntil = now.Add(suspensionBackoff)
	}
	return c.suspendedUntil
}

func (c *Client) cachedToken() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token != "" && c.now().Before(c.expires) {
		return c.token
	}
	return ""
}

// dropToken forgets token unless another call already replaced it.
func (c *Client) dropToken(token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token == token {
		c.token = ""
	}
}

// post sends one request body to url and returns the response element, or
// the fault. account is for the log line only.
func (c *Client) post(ctx context.Context, url, reqName, account string, body []byte) (json.RawMessage, error) {
	start := c.now()
	raw, status, err := c.roundTrip(ctx, url, reqName, body)
	if errors.Is(err, errHTTP503) {
		err = &LoginSuspendedError{URL: url, Request: reqName, RetryAfter: c.noteSuspension(url)}
		c.log.LogAttrs(ctx, slog.LevelWarn, "zimbra answered HTTP 503: ZimbraInvalidLoginFilter has likely suspended this IP",
			slog.String("url", url), slog.String("request", reqName), slog.Time("no_auth_before", err.(*LoginSuspendedError).RetryAfter))
	}
	code := ""
	var f *Fault
	if errors.As(err, &f) {
		code = f.Code
	}
	c.log.LogAttrs(ctx, slog.LevelDebug, "zimbra call",
		slog.String("request", reqName), slog.String("account", account), slog.String("url", url),
		slog.Int("status", status), slog.Duration("duration", c.now().Sub(start)),
		slog.String("fault", code), slog.Bool("ok", err == nil))
	return raw, err
}

func (c *Client) roundTrip(ctx context.Context, url, reqName string, body []byte) (json.RawMessage, int, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, 0, fmt.Errorf("zimbra: %s: %w", reqName, err)
	}
	hreq.Header.Set("Content-Type", "application/json; charset=utf-8")
	hreq.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(hreq)
	if err != nil {
		return nil, 0, fmt.Errorf("zimbra: %s: %w", reqName, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return nil, resp.StatusCode, fmt.Errorf("zimbra: %s: reading response: %w", reqName, err)
	}
	if len(data) > MaxResponseBytes {
		return nil, resp.StatusCode, fmt.Errorf("zimbra: %s: response larger than %d bytes", reqName, MaxResponseBytes)
	}
	respName := strings.TrimSuffix(reqName, "Request") + "Response"
	raw, err := parseResponse(data, respName)
	var f *Fault
	switch {
	case errors.As(err, &f):
		// soap-admin: faults come with HTTP 500; take one whatever the status.
		return nil, resp.StatusCode, err
	case resp.StatusCode == http.StatusServiceUnavailable:
		return nil, resp.StatusCode, fmt.Errorf("zimbra: %s: %w", reqName, errHTTP503)
	case resp.StatusCode != http.StatusOK:
		// Not Zimbra speaking (a proxy, a wrong path): report the status,
		// not the body, which may be an HTML page of any size.
		return nil, resp.StatusCode, fmt.Errorf("zimbra: %s: HTTP %d %s (%s, %d bytes, not a SOAP fault)",
			reqName, resp.StatusCode, http.StatusText(resp.StatusCode), resp.Header.Get("Content-Type"), len(data))
	case err != nil:
		return nil, resp.StatusCode, fmt.Errorf("zimbra: %s: %w", reqName, err)
	}
	return raw, resp.StatusCode, nil
}
