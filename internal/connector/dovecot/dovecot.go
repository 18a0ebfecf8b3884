package dovecot

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
)

// DefaultTimeout bounds one API request when Config.Timeout is zero.
// Dovecot answers a kick or a cache flush in tens of milliseconds; ten
// seconds covers a loaded server without holding a playbook for long.
const DefaultTimeout = 10 * time.Second

// maxReplyBytes caps the answer read. A kick or flush answer is under
// 100 bytes and a who answer about 150 bytes per account and service; a
// megabyte is far beyond any mask this client sends.
const maxReplyBytes = 1 << 20

// Exit codes doveadm reports in an error entry of type "exitCode"
// (sysexits.h, as doveadm uses them).
const (
	ExitUsage    = 64 // EX_USAGE: bad parameters
	ExitNoUser   = 67 // EX_NOUSER: no such user
	ExitNotFound = 68 // DOVEADM_EX_NOTFOUND (EX_NOHOST): nothing matched, e.g. no session to kick
	ExitTempFail = 75 // EX_TEMPFAIL: try again, e.g. auth process unreachable
	ExitNoPerm   = 77 // EX_NOPERM
	ExitConfig   = 78 // EX_CONFIG
)

var (
	// ErrUnauthorized is wrapped by an *Error with HTTP status 401 or 403:
	// the API refused the key.
	ErrUnauthorized = errors.New("dovecot: doveadm API refused the API key")
	// ErrNotFound is wrapped by an *Error with exit code ExitNotFound.
	ErrNotFound = errors.New("dovecot: nothing matched")
)

// Config configures a Client.
type Config struct {
	// URL is the doveadm HTTP API endpoint, for example
	// "http://127.0.0.1:8080/doveadm/v1" (service doveadm { inet_listener
	// http { port = 8080 } }). A URL without a path gets /doveadm/v1.
	URL string
	// APIKeyFile holds doveadm_api_key; surrounding white space is
	// ignored. It is read once, by New.
	APIKeyFile string
	// Timeout bounds one request; 0 means DefaultTimeout.
	Timeout time.Duration
}

// Client calls the doveadm HTTP API. It is safe for concurrent use.
type Client struct {
	url  string
	cred *credential // a pointer, so that %v of a Client prints no key
	hc   *http.Client
	tags atomic.Uint64
}

// credential holds the Authorization header value.
type credential struct{ header string }

// New returns a client for cfg. It reads the API key file.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("dovecot: url: %w", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("dovecot: url %q: scheme must be http or https", cfg.URL)
	case u.Host == "":
		return nil, fmt.Errorf("dovecot: url %q: missing host", cfg.URL)
	case u.User != nil:
		return nil, errors.New("dovecot: url: credentials belong in the API key file, not the URL")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("dovecot: url %q: no query or fragment expected", cfg.URL)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/doveadm/v1"
	}
	if cfg.APIKeyFile == "" {
		return nil, errors.New("dovecot: api key file: not set")
	}
	b, err := os.ReadFile(cfg.APIKeyFile)
	if err != nil {
		return nil, fmt.Errorf("dovecot: api key file: %w", err)
	}
	key := strings.TrimSpace(string(b))
	if key == "" {
		return nil, fmt.Errorf("dovecot: api key file %s is empty", cfg.APIKeyFile)
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // the key goes to Dovecot only, never through a proxy
	return &Client{
		url: u.String(),
		// Dovecot's http server: "X-Dovecot-API" auth scheme, the key
		// base64-encoded (REFERENCE §4; the settings page's "X-API-Key"
		// is not what the code accepts).
		cred: &credential{header: "X-Dovecot-API " + base64.StdEncoding.EncodeToString([]byte(key))},
		hc: &http.Client{
			Transport: tr,
			Timeout:   timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}, nil
}

// Kick ends every session of account (`doveadm kick account`): Dovecot
// signals the account's imap/pop3 processes, which say BYE and close. It
// returns how many accounts doveadm reports as kicked: doveadm's answer
// lists the kicked user names ([{"result":"u@dom"}]), not a connection
// count, so for one account this is 1, or 0 when it had no session (doveadm
// exit code 68, which Kick does not treat as an error). Use Who before Kick
// for the connections.
func (c *Client) Kick(ctx context.Context, account string) (int, error) {
	if err := checkAccount(account); err != nil {
		return 0, err
	}
	rows, err := c.call(ctx, "kick", map[string]any{"mask": []string{account}})
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return len(rows), nil
}

// AuthCacheFlush removes account's entries from the auth cache (`doveadm
// auth cache flush account`), so that the next login reads the passdb
// again. Run it after changing a password or locking an account: with
// auth_cache_size > 0, a passdb that Dovecot caches (SQL, LDAP) keeps
// accepting the old password until then. An account without cache entries
// is no error.
func (c *Client) AuthCacheFlush(ctx context.Context, account string) error {
	if err := checkAccount(account); err != nil {
		return err
	}
	// The parameter is "user" (doveadm-auth.c: DOVEADM_CMD_PARAM '\0'
	// "user" array), not "userMask": Dovecot 2.3.19 answers userMask with
	// an invalidRequest error.
	_, err := c.call(ctx, "authCacheFlush", map[string]any{"user": []string{account}})
	return err
}

// Session is one line of `doveadm who`: an account's connections to one
// service.
type Session struct {
	Username    string
	Service     string // imap, pop3, …
	Connections int
	PIDs        []int
	IPs         []string
}

// Who lists account's sessions (`doveadm who account`), empty when it has
// none.
func (c *Client) Who(ctx context.Context, account string) ([]Session, error) {
	if err := checkAccount(account); err != nil {
		return nil, err
	}
	rows, err := c.call(ctx, "who", map[string]any{"mask": []string{account}})
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	sessions := make([]Session, 0, len(rows))
	for _, row := range rows {
		// {"username":"u@dom","connections":"2","service":"imap",
		//  "pids":"(24715 24713)","ips":"(127.0.0.1)"}
		s := Session{Username: row["username"], Service: row["service"], IPs: parseList(row["ips"])}
		s.Connections, _ = strconv.Atoi(row["connections"])
		for _, p := range parseList(row["pids"]) {
			if pid, err := strconv.Atoi(p); err == nil {
				s.PIDs = append(s.PIDs, pid)
			}
		}
		sessions = append(sessions, s)
	}
	return sessions, nil
}

// parseList parses doveadm who's "(a b c)" lists.
func parseList(s string) []string {
	s = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(s), "("), ")")
	return strings.Fields(s)
}

// checkAccount refuses what doveadm would read as more than one account:
// the mask wildcards, and white space or control characters that no
// account name holds.
func checkAccount(account string) error {
	if account == "" {
		return errors.New("dovecot: empty account")
	}
	if strings.ContainsAny(account, "*?") {
		return fmt.Errorf("dovecot: account %q holds a doveadm mask wildcard", account)
	}
	if strings.IndexFunc(account, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return fmt.Errorf("dovecot: account %q holds white space or a control character", account)
	}
	return nil
}

// Error is a failed API call: an HTTP error before the command ran
// (Status other than 200), or the command's own error entry.
type Error struct {
	// Command is the doveadm command, such as "kick".
	Command string
	// Status is the HTTP status code, and Reason its text ("Authentication
	// required"). Status is 200 when the command ran and failed.
	Status int
	Reason string
	// Type is the error entry's type: "exitCode", "unknownMethod" or
	// "invalidRequest"; empty for an HTTP error.
	Type string
	// ExitCode is doveadm's exit code with Type "exitCode".
	ExitCode int
	// Detail is the start of a non-JSON answer body, printable characters
	// only.
	Detail string
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dovecot: %s: ", e.Command)
	switch {
	case e.Status != http.StatusOK:
		fmt.Fprintf(&b, "HTTP %d %s", e.Status, e.Reason)
		switch e.Status {
		case http.StatusUnauthorized, http.StatusForbidden:
			b.WriteString(" (the API key does not match doveadm_api_key)")
		case http.StatusNotFound:
			b.WriteString(" (the URL's path is not the API's /doveadm/v1)")
		}
	case e.Type == "exitCode":
		fmt.Fprintf(&b, "doveadm exit code %d", e.ExitCode)
		if name := exitName(e.ExitCode); name != "" {
			b.WriteString(" (" + name + ")")
		}
	default:
		fmt.Fprintf(&b, "doveadm error %s", e.Type)
	}
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	return b.String()
}

// Unwrap maps a refused key to ErrUnauthorized and exit code 68 to
// ErrNotFound.
func (e *Error) Unwrap() error {
	switch {
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		return ErrUnauthorized
	case e.Type == "exitCode" && e.ExitCode == ExitNotFound:
		return ErrNotFound
	}
	return nil
}

func exitName(code int) string {
	switch code {
	case ExitUsage:
		return "usage"
	case ExitNoUser:
		return "no such user"
	case ExitNotFound:
		return "not found"
	case ExitTempFail:
		return "temporary failure"
	case ExitNoPerm:
		return "no permission"
	case ExitConfig:
		return "configuration error"
	}
	return ""
}

// call runs one command and returns the rows of its doveadmResponse.
func (c *Client) call(ctx context.Context, command string, params map[string]any) ([]map[string]string, error) {
	tag := "mailbrake" + strconv.FormatUint(c.tags.Add(1), 10)
	// REFERENCE §4: one command per request, [["command",{params},"tag"]].
	body, err := json.Marshal([]any{[]any{command, params, tag}})
	if err != nil {
		return nil, fmt.Errorf("dovecot: %s: %w", command, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("dovecot: %s: %w", command, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", c.cred.header)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("dovecot: %s: %w", command, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("dovecot: %s: reading the answer: %w", command, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &Error{
			Command: command,
			Status:  resp.StatusCode,
			Reason:  strings.TrimSpace(strings.TrimPrefix(resp.Status, strconv.Itoa(resp.StatusCode))),
			Detail:  excerpt(data),
		}
	}
	if len(data) > maxReplyBytes {
		return nil, fmt.Errorf("dovecot: %s: answer longer than %d bytes", command, maxReplyBytes)
	}
	r, err := parseReply(data)
	if err != nil {
		return nil, fmt.Errorf("dovecot: %s: %w", command, err)
	}
	if r.Tag != tag {
		return nil, fmt.Errorf("dovecot: %s: answer tagged %q, sent %q", command, r.Tag, tag)
	}
	if r.Kind == kindError {
		return nil, &Error{Command: command, Status: resp.StatusCode, Type: r.ErrType, ExitCode: r.ExitCode}
	}
	return r.Rows, nil
}

// excerpt returns the first line of an error body, at most 200 printable
// characters.
func excerpt(data []byte) string {
	s, _, _ := strings.Cut(strings.ToValidUTF8(string(data), "?"), "\n")
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return -1
	}, s)
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "") + "…"
	}
	return strings.TrimSpace(s)
}

// probeAccount is an account no site has: `doveadm who` for it lists no
// session and reads nothing.
const probeAccount = "mailbrake-health-probe@invalid"

// Ping shows that the doveadm HTTP API answers with mailbrake's
// credentials: `doveadm who` for an account that cannot exist.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.Who(ctx, probeAccount)
	return err
}
