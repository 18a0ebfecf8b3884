package ldapdir

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Defaults of Config fields left empty.
const (
	DefaultFilter              = "(|(mail=%s)(uid=%s))"
	DefaultPasswordAttr        = "userPassword"
	DefaultLockAttr            = "pwdAccountLockedTime"
	DefaultLockValue           = "000001010000Z"
	DefaultPasswordChangedAttr = "pwdChangedTime"
	// DefaultTimeout bounds a request when neither Config.Timeout nor the
	// context say otherwise: long enough for a busy directory, short enough
	// that a dead one does not hold up a playbook for minutes.
	DefaultTimeout = 10 * time.Second
)

// Errors returned, wrapped, by Client methods.
var (
	// ErrNoSuchAccount means that the filter matched no entry.
	ErrNoSuchAccount = errors.New("ldapdir: no such account")
	// ErrAmbiguousAccount means that the filter matched more than one
	// entry; the client never picks one.
	ErrAmbiguousAccount = errors.New("ldapdir: account matches more than one entry")
	// ErrNoPassword means that the entry has no password attribute, or that
	// the bind DN may not read it.
	ErrNoPassword = errors.New("ldapdir: entry has no readable password")
	// ErrPasswordModifyUnsupported means that the server does not know the
	// Password Modify extended operation and Config.PasswordModifyFallback
	// is off.
	ErrPasswordModifyUnsupported = errors.New("ldapdir: server does not support Password Modify (RFC 3062)")
)

// Config configures a Client.
type Config struct {
	// URL is the server: ldap://host[:389], ldaps://host[:636] or
	// ldapi://%2Fpath%2Fto%2Fsocket.
	URL string
	// BindDN is the service account the client binds as; empty binds
	// anonymously (no bind request).
	BindDN string
	// BindPasswordFile holds BindDN's password; a trailing newline is
	// ignored. It is read on every (re)connect, so it can be rotated.
	BindPasswordFile string
	// BaseDN is where accounts are searched, with subtree scope.
	BaseDN string
	// Filter finds an account's entry: every "%s" or "{account}" is
	// replaced by the account name escaped with ldap.EscapeFilter (RFC
	// 4515). The filter must match at most one entry. Default
	// DefaultFilter.
	Filter string
	// PasswordAttr holds the stored password hash. Default
	// DefaultPasswordAttr.
	PasswordAttr string
	// StartTLS upgrades an ldap:// connection with StartTLS (RFC 4511
	// 4.14) before binding.
	StartTLS bool
	// CAFile is a PEM file of CA certificates for ldaps:// and StartTLS;
	// empty uses the system roots.
	CAFile string
	// InsecureSkipVerify turns off certificate verification. For tests
	// only.
	InsecureSkipVerify bool
	// Timeout bounds dialing and each request. Default DefaultTimeout.
	Timeout time.Duration
	// LockAttr is the attribute Lock sets. Default DefaultLockAttr.
	LockAttr string
	// LockValue is the value Lock writes. Default DefaultLockValue with
	// the default LockAttr; required with another LockAttr.
	LockValue string
	// UnlockValue is the value Unlock writes; empty deletes LockAttr.
	UnlockValue string
	// PasswordChangedAttr holds the time of the last password change, in
	// generalized time. Default DefaultPasswordChangedAttr.
	PasswordChangedAttr string
	// PasswordModifyFallback lets SetPassword fall back to replacing
	// PasswordAttr with the new password in cleartext when the server does
	// not know Password Modify. Turn it on only for a server that hashes
	// cleartext writes (see the package documentation).
	PasswordModifyFallback bool
}

// Client is an LDAP client for account lookups and changes. It is safe for
// concurrent use: up to MaxConns requests run at once, each on a
// connection of its own (kept for the next), so a slow directory or a
// dial that hangs holds up only its own caller.
type Client struct {
	cfg    Config
	scheme string // ldap, ldaps or ldapi
	addr   string // host:port, or the socket path for ldapi
	tlsCfg *tls.Config

	slots chan struct{} // one per connection in use (MaxConns)
	mu    sync.Mutex
	idle  []*ldap.Conn // connections kept between requests

	// noPasswordModify makes SetPassword act as if the server did not
	// know Password Modify, so that tests reach the fallback.
	noPasswordModify bool
}

// New checks cfg, fills in defaults and returns a Client. It does not
// connect: the first request does.
func New(cfg Config) (*Client, error) {
	if cfg.Filter == "" {
		cfg.Filter = DefaultFilter
	}
	if cfg.PasswordAttr == "" {
		cfg.PasswordAttr = DefaultPasswordAttr
	}
	if cfg.PasswordChangedAttr == "" {
		cfg.PasswordChangedAttr = DefaultPasswordChangedAttr
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.LockAttr == "" {
		cfg.LockAttr = DefaultLockAttr
		if cfg.LockValue == "" {
			cfg.LockValue = DefaultLockValue
		}
	}

	var errs []error
	scheme, addr, host, err := parseURL(cfg.URL)
	if err != nil {
		errs = append(errs, fmt.Errorf("url: %w", err))
	} else if cfg.StartTLS && scheme != "ldap" {
		errs = append(errs, fmt.Errorf("start_tls: needs an ldap:// url, not %s://", scheme))
	}
	if cfg.BaseDN == "" {
		errs = append(errs, errors.New("base_dn: missing"))
	} else if _, err := ldap.ParseDN(cfg.BaseDN); err != nil {
		errs = append(errs, fmt.Errorf("base_dn: %w", err))
	}
	if cfg.BindDN != "" && cfg.BindPasswordFile == "" {
		errs = append(errs, errors.New("bind_password_file: missing for bind_dn"))
	}
	if !strings.Contains(cfg.Filter, "%s") && !strings.Contains(cfg.Filter, "{account}") {
		errs = append(errs, fmt.Errorf("filter: %q has no %%s or {account} placeholder", cfg.Filter))
	} else if _, err := ldap.CompileFilter(expandFilter(cfg.Filter, "account@example.com")); err != nil {
		errs = append(errs, fmt.Errorf("filter: %w", err))
	}
	if cfg.LockValue == "" {
		errs = append(errs, errors.New("lock_value: missing for lock_attr "+cfg.LockAttr))
	}
	if cfg.LockValue != "" && strings.EqualFold(cfg.LockValue, cfg.UnlockValue) {
		errs = append(errs, errors.New("unlock_value: same as lock_value"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("ldapdir: %w", errors.Join(errs...))
	}

	c := &Client{cfg: cfg, scheme: scheme, addr: addr, slots: make(chan struct{}, MaxConns)}
	if scheme == "ldaps" || cfg.StartTLS {
		c.tlsCfg = &tls.Config{
			ServerName:         host,
			MinVersion:         tls.VersionTLS12,
			InsecureSkipVerify: cfg.InsecureSkipVerify, //nolint:gosec // opt-in, documented as tests only
		}
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("ldapdir: ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("ldapdir: ca_file: no certificate in %s", cfg.CAFile)
			}
			c.tlsCfg.RootCAs = pool
		}
	}
	return c, nil
}

// MaxConns is how many requests a Client runs at once.
const MaxConns = 4

// Close closes the idle connections. The Client stays usable: the next
// request dials again.
func (c *Client) Close() error {
	c.mu.Lock()
	idle := c.idle
	c.idle = nil
	c.mu.Unlock()
	for _, conn := range idle {
		conn.Close()
	}
	return nil
}

// take returns an idle connection, or nil.
func (c *Client) take() *ldap.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.idle) > 0 {
		conn := c.idle[len(c.idle)-1]
		c.idle = c.idle[:len(c.idle)-1]
		if !conn.IsClosing() {
			return conn
		}
		conn.Close()
	}
	return nil
}

// put keeps conn for the next request.
func (c *Client) put(conn *ldap.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.idle) >= MaxConns {
		conn.Close()
		return
	}
	c.idle = append(c.idle, conn)
}

// PasswordHash returns the stored value of the account's password
// attribute exactly as the server returns it ("{SSHA}…", "{CRYPT}$6$…").
// With several values it returns the first.
func (c *Client) PasswordHash(ctx context.Context, account string) (string, error) {
	e, err := c.find(ctx, account, c.cfg.PasswordAttr)
	if err != nil {
		return "", err
	}
	v := e.GetEqualFoldAttributeValues(c.cfg.PasswordAttr)
	if len(v) == 0 || v[0] == "" {
		return "", fmt.Errorf("%w: %s (%s)", ErrNoPassword, account, e.DN)
	}
	return v[0], nil
}

// Lock sets LockAttr of the account to LockValue. Locking a locked
// account succeeds.
func (c *Client) Lock(ctx context.Context, account string) error {
	return c.modify(ctx, account, "locking", func(dn string) *ldap.ModifyRequest {
		req := ldap.NewModifyRequest(dn, nil)
		req.Replace(c.cfg.LockAttr, []string{c.cfg.LockValue})
		return req
	})
}

// Unlock sets LockAttr of the account to UnlockValue, or deletes it when
// UnlockValue is empty. Unlocking an unlocked account succeeds.
func (c *Client) Unlock(ctx context.Context, account string) error {
	return c.modify(ctx, account, "unlocking", func(dn string) *ldap.ModifyRequest {
		req := ldap.NewModifyRequest(dn, nil)
		if c.cfg.UnlockValue == "" {
			req.Delete(c.cfg.LockAttr, nil)
		} else {
			req.Replace(c.cfg.LockAttr, []string{c.cfg.UnlockValue})
		}
		return req
	})
}

// Attribute returns the values of one attribute of the account's entry
// (for example a recovery address); none when it has no such attribute.
func (c *Client) Attribute(ctx context.Context, account, attr string) ([]string, error) {
	e, err := c.find(ctx, account, attr)
	if err != nil {
		return nil, err
	}
	return e.GetEqualFoldAttributeValues(attr), nil
}

// MustChangePassword sets ppolicy's pwdReset to TRUE: with a policy whose
// pwdMustChange is TRUE, the user's next bind may only change the
// password. Servers without ppolicy refuse the attribute.
func (c *Client) MustChangePassword(ctx context.Context, account string) error {
	return c.modify(ctx, account, "forcing a password change", func(dn string) *ldap.ModifyRequest {
		req := ldap.NewModifyRequest(dn, nil)
		req.Replace("pwdReset", []string{"TRUE"})
		return req
	})
}

// Locked reports whether LockAttr of the account holds a value other than
// UnlockValue. With pwdAccountLockedTime that includes a lock ppolicy set
// after failed binds, even one whose pwdLockoutDuration has passed (slapd
// removes it at the next bind).
func (c *Client) Locked(ctx context.Context, account string) (bool, error) {
	e, err := c.find(ctx, account, c.cfg.LockAttr)
	if err != nil {
		return false, err
	}
	for _, v := range e.GetEqualFoldAttributeValues(c.cfg.LockAttr) {
		if c.cfg.UnlockValue == "" || !strings.EqualFold(v, c.cfg.UnlockValue) {
			return true, nil
		}
	}
	return false, nil
}

// SetPassword sets the account's password to newPassword with the Password
// Modify extended operation (RFC 3062), as the bind DN and without the old
// password; the server hashes it. See Config.PasswordModifyFallback for
// servers without the operation. An empty password is an error (RFC 3062
// would have the server generate one).
func (c *Client) SetPassword(ctx context.Context, account string, newPassword []byte) error {
	if len(newPassword) == 0 {
		return fmt.Errorf("ldapdir: setting the password of %s: empty password", account)
	}
	dn, err := c.dn(ctx, account)
	if err != nil {
		return err
	}
	err = c.do(ctx, func(conn *ldap.Conn) error {
		if c.noPasswordModify {
			return ldap.NewError(ldap.LDAPResultProtocolError, errors.New("password modify disabled for a test"))
		}
		_, err := conn.PasswordModify(ldap.NewPasswordModifyRequest(dn, "", string(newPassword)))
		return err
	})
	// RFC 4511 4.12: a server that does not recognize an extended
	// operation answers protocolError.
	if ldap.IsErrorWithCode(err, ldap.LDAPResultProtocolError) {
		if !c.cfg.PasswordModifyFallback {
			return fmt.Errorf("%w: setting the password of %s (%s)", ErrPasswordModifyUnsupported, account, dn)
		}
		err = c.do(ctx, func(conn *ldap.Conn) error {
			req := ldap.NewModifyRequest(dn, nil)
			req.Replace(c.cfg.PasswordAttr, []string{string(newPassword)})
			return conn.Modify(req)
		})
	}
	if err != nil {
		return fmt.Errorf("ldapdir: setting the password of %s (%s): %w", account, dn, err)
	}
	return nil
}

// PasswordChangedAt returns the time in PasswordChangedAttr of the
// account, an operational attribute that is requested by name. It returns
// the zero time when the entry has none: with OpenLDAP ppolicy,
// pwdChangedTime is written on password changes, and on adds only under a
// policy with pwdMaxAge or pwdMinAge.
func (c *Client) PasswordChangedAt(ctx context.Context, account string) (time.Time, error) {
	e, err := c.find(ctx, account, c.cfg.PasswordChangedAttr)
	if err != nil {
		return time.Time{}, err
	}
	v := e.GetEqualFoldAttributeValue(c.cfg.PasswordChangedAttr)
	if v == "" {
		return time.Time{}, nil
	}
	ts, err := parseGeneralizedTime(v)
	if err != nil {
		return time.Time{}, fmt.Errorf("ldapdir: %s of %s (%s): %w", c.cfg.PasswordChangedAttr, account, e.DN, err)
	}
	return ts, nil
}

// parseGeneralizedTime parses the GeneralizedTime syntax (RFC 4517 3.3.13)
// as directories write it: seconds present, optional fraction, "Z" or a
// numeric offset.
func parseGeneralizedTime(s string) (time.Time, error) {
	// Go accepts a fractional second after "05" even when the layout has
	// none, and "Z0700" accepts both "Z" and "+hhmm".
	t, err := time.Parse("20060102150405Z0700", s)
	if err != nil {
		return time.Time{}, fmt.Errorf("not a generalized time: %q", s)
	}
	return t.UTC(), nil
}

// modify finds the account and applies the modification build returns.
func (c *Client) modify(ctx context.Context, account, what string, build func(dn string) *ldap.ModifyRequest) error {
	dn, err := c.dn(ctx, account)
	if err != nil {
		return err
	}
	err = c.do(ctx, func(conn *ldap.Conn) error {
		err := conn.Modify(build(dn))
		if c.cfg.UnlockValue == "" && ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchAttribute) {
			// Deleting LockAttr of an unlocked account.
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("ldapdir: %s %s (%s): %w", what, account, dn, err)
	}
	return nil
}

// dn returns the DN of the account's entry.
func (c *Client) dn(ctx context.Context, account string) (string, error) {
	// "1.1": no attributes (RFC 4511 4.5.1.8).
	e, err := c.find(ctx, account, "1.1")
	if err != nil {
		return "", err
	}
	return e.DN, nil
}

// find returns the one entry that the filter matches for account, with
// the attributes attrs.
func (c *Client) find(ctx context.Context, account string, attrs ...string) (*ldap.Entry, error) {
	if account == "" {
		return nil, fmt.Errorf("%w: empty account name", ErrNoSuchAccount)
	}
	filter := expandFilter(c.cfg.Filter, account)
	var entries []*ldap.Entry
	err := c.do(ctx, func(conn *ldap.Conn) error {
		// Size limit 2: enough to tell one match from several.
		req := ldap.NewSearchRequest(c.cfg.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
			2, c.timeLimit(ctx), false, filter, attrs, nil)
		res, err := conn.Search(req)
		if res != nil {
			entries = res.Entries
		}
		if ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
			return nil
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ldapdir: looking up %s: %w", account, err)
	}
	switch len(entries) {
	case 0:
		return nil, fmt.Errorf("%w: %s", ErrNoSuchAccount, account)
	case 1:
		return entries[0], nil
	default:
		return nil, fmt.Errorf("%w: %s", ErrAmbiguousAccount, account)
	}
}

// expandFilter replaces the placeholders of filter by the escaped account.
// One pass: an escaped account that contains a placeholder stays as is.
func expandFilter(filter, account string) string {
	esc := ldap.EscapeFilter(account)
	return strings.NewReplacer("%s", esc, "{account}", esc).Replace(filter)
}

// timeLimit returns the server-side time limit of a search in seconds.
func (c *Client) timeLimit(ctx context.Context) int {
	d := c.timeout(ctx)
	return max(1, int((d+time.Second-1)/time.Second))
}

// ctxDone is ctx.Err(), also when ctx's deadline has passed but its
// timer has not fired yet: the request's own timeout, set to the same
// deadline, can end it first on a loaded machine.
func ctxDone(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// timeout returns the smaller of Config.Timeout and the time left until
// ctx's deadline.
func (c *Client) timeout(ctx context.Context) time.Duration {
	d := c.cfg.Timeout
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < d {
			d = max(left, time.Millisecond)
		}
	}
	return d
}

// do runs fn on the connection, dialing and binding first when there is
// none. A network error drops the connection; when it happened on a
// connection reused from an earlier request, which the server or a
// firewall may have closed while idle, fn runs once more on a new one.
// fn is then sent twice if the first request did reach the server: that is
// harmless for searches and modifies that replace or delete, and for
// Password Modify it sets the same password again.
func (c *Client) do(ctx context.Context, fn func(*ldap.Conn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.slots }()
	conn := c.take()
	for attempt := 1; ; attempt++ {
		fresh := false
		if conn == nil {
			var err error
			if conn, err = c.connect(ctx); err != nil {
				return err
			}
			fresh = true
		}
		err := c.run(ctx, conn, fn)
		if err == nil {
			c.put(conn)
			return nil
		}
		if ctxErr := ctxDone(ctx); ctxErr != nil {
			// run closed the connection to abort the request.
			conn.Close()
			return ctxErr
		}
		// A connection the server closed fails with errors that do not
		// all carry ErrorNetwork; the reader then marks it closing.
		if !ldap.IsErrorWithCode(err, ldap.ErrorNetwork) && !conn.IsClosing() {
			c.put(conn)
			return err
		}
		conn.Close()
		conn = nil
		if fresh || attempt > 1 {
			return err
		}
	}
}

// run runs fn on conn under ctx: Config.Timeout bounds each request, and
// the end of ctx closes conn, which fails the request. (The request timeout
// is not shortened to ctx's deadline: the error then is ctx's.)
func (c *Client) run(ctx context.Context, conn *ldap.Conn, fn func(*ldap.Conn) error) error {
	conn.SetTimeout(c.cfg.Timeout)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	return fn(conn)
}

// connect dials the server, upgrades with StartTLS when configured and
// binds as BindDN.
func (c *Client) connect(ctx context.Context) (*ldap.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	nc, err := c.dial(dctx)
	if err != nil {
		return nil, fmt.Errorf("ldapdir: connecting to %s: %w", c.cfg.URL, err)
	}
	conn := ldap.NewConn(nc, c.scheme == "ldaps")
	conn.Start()
	err = c.run(dctx, conn, func(conn *ldap.Conn) error {
		if c.cfg.StartTLS {
			if err := conn.StartTLS(c.tlsCfg); err != nil {
				return fmt.Errorf("StartTLS: %w", err)
			}
		}
		if c.cfg.BindDN == "" {
			return nil
		}
		pw, err := c.bindPassword()
		if err != nil {
			return err
		}
		if err := conn.Bind(c.cfg.BindDN, pw); err != nil {
			// ldap.Error carries the result code and the server's
			// diagnostic message, never the password.
			return fmt.Errorf("binding as %s: %w", c.cfg.BindDN, err)
		}
		return nil
	})
	if ctxErr := ctxDone(dctx); ctxErr != nil {
		// Cancelled or timed out: the close that aborted the request
		// made err a network error.
		err = ctxErr
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("ldapdir: connecting to %s: %w", c.cfg.URL, err)
	}
	return conn, nil
}

func (c *Client) dial(ctx context.Context) (net.Conn, error) {
	d := &net.Dialer{Timeout: c.cfg.Timeout}
	switch c.scheme {
	case "ldapi":
		return d.DialContext(ctx, "unix", c.addr)
	case "ldaps":
		td := &tls.Dialer{NetDialer: d, Config: c.tlsCfg}
		return td.DialContext(ctx, "tcp", c.addr)
	default:
		return d.DialContext(ctx, "tcp", c.addr)
	}
}

// parseURL splits an LDAP URL (RFC 4516) into its scheme, the address to
// dial and the host name for TLS. A DN, attributes or filter after the
// host are not used. ldapi:// has the socket path, percent-encoded, as its
// host (ldapi://%2Frun%2Fslapd%2Fldapi), which net/url does not accept.
func parseURL(raw string) (scheme, addr, host string, err error) {
	if raw == "" {
		return "", "", "", errors.New("missing")
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return "", "", "", fmt.Errorf("%q is not scheme://host", raw)
	}
	scheme = strings.ToLower(scheme)
	hostport, _, _ := strings.Cut(rest, "/")
	switch scheme {
	case "ldapi":
		path, err := url.PathUnescape(hostport)
		if err != nil {
			return "", "", "", fmt.Errorf("ldapi socket path: %w", err)
		}
		if path == "" {
			return "", "", "", errors.New("ldapi:// needs the socket path, percent-encoded, as host")
		}
		return scheme, path, "", nil
	case "ldap", "ldaps":
		u, err := url.Parse(scheme + "://" + hostport)
		if err != nil {
			return "", "", "", err
		}
		if u.Hostname() == "" {
			return "", "", "", errors.New("missing host")
		}
		port := u.Port()
		if port == "" {
			port = "389"
			if scheme == "ldaps" {
				port = "636"
			}
		}
		return scheme, net.JoinHostPort(u.Hostname(), port), u.Hostname(), nil
	default:
		return "", "", "", fmt.Errorf("scheme %q is not ldap, ldaps or ldapi", scheme)
	}
}

func (c *Client) bindPassword() (string, error) {
	b, err := os.ReadFile(c.cfg.BindPasswordFile)
	if err != nil {
		// The path only: os errors do not contain file contents.
		return "", fmt.Errorf("reading bind_password_file: %w", err)
	}
	pw := strings.TrimRight(string(b), "\r\n")
	if pw == "" {
		return "", fmt.Errorf("bind_password_file %s is empty", c.cfg.BindPasswordFile)
	}
	return pw, nil
}

// Ping shows that the directory answers: a new connection, StartTLS when
// configured and a bind as BindDN, closed again.
func (c *Client) Ping(ctx context.Context) error {
	conn, err := c.connect(ctx)
	if err != nil {
		return err
	}
	conn.Close()
	return nil
}
