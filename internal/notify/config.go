package notify

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Config says where notifications go. The zero value of a sub-config turns
// its channel off: mail needs SMTP.Addr, the webhook Webhook.URL and syslog
// Syslog.Network or Syslog.Addr. Secrets are read from files named here;
// Config itself never holds one.
type Config struct {
	SMTP SMTPConfig
	// HelpDesk receives the help-desk mail: what happened and what to do next.
	HelpDesk []string
	// Admins receive the admin mail: the help-desk text plus every
	// technical detail.
	Admins []string
	// NotifyUser sends the user a short mail (no evidence) when a playbook
	// finished: the account was locked for their protection and how to
	// reach the help desk.
	NotifyUser bool
	// UserAddress looks up where the user mail goes (a recovery address
	// outside the locked mailbox). Optional: without it the mail goes to
	// the account itself, which the user reads once the help desk has
	// given access back. An empty address skips the user mail.
	UserAddress func(ctx context.Context, account string) (string, error)
	// HelpDeskContact tells users how to reach the help desk (a phone
	// number, a web page). Empty means the HelpDesk addresses.
	HelpDeskContact string
	Webhook         WebhookConfig
	Syslog          SyslogConfig
	// TemplatesDir optionally holds helpdesk.txt, admin.txt and user.txt
	// (text/template over MessageData) that replace the embedded defaults.
	TemplatesDir string
	RateLimit    RateLimitConfig
}

// SMTPConfig is how mail is handed to the MTA.
type SMTPConfig struct {
	// Addr is host:port of the submission or relay server.
	Addr string
	// HelloName is the EHLO name and the right-hand side of Message-IDs;
	// empty means the host name.
	HelloName string
	// From is the header and envelope sender, "Mailbrake <mailbrake@example.edu>".
	From string
	// StartTLS is "none", "opportunistic" (the default: STARTTLS when
	// offered, the certificate checked only when CAFile is set, as
	// Postfix's "may" level; a failed handshake is an error, not a
	// fallback to clear text) or "required" (STARTTLS and a verified
	// certificate, against CAFile or the system roots).
	StartTLS string
	// Username turns on AUTH PLAIN, which is only sent over a verified TLS
	// connection or to a loopback address.
	Username string
	// PasswordFile holds the AUTH password (one line).
	PasswordFile string
	// CAFile is a PEM bundle to verify the server certificate with.
	CAFile string
	// Timeout bounds one SMTP transaction, connect to QUIT; default 30s.
	Timeout time.Duration
}

// WebhookConfig is the signed JSON webhook.
type WebhookConfig struct {
	// URL receives a POST per event (http or https).
	URL string
	// SecretFile holds the HMAC-SHA256 key (at least 16 bytes; surrounding
	// white space is trimmed).
	SecretFile string
	// Timeout bounds one attempt; default 10s.
	Timeout time.Duration
	// Retries after a network error or a 5xx (or 408/429) answer, with
	// exponential backoff from 1s; 0 means 3, negative means none.
	Retries int
}

// SyslogConfig is the RFC 5424 syslog channel.
type SyslogConfig struct {
	// Network is "udp" (the default when Addr is set), "tcp" (RFC 6587
	// octet counting) or "unix" (a datagram socket, /dev/log by default).
	Network string
	// Addr is host:port for udp and tcp, a socket path for unix.
	Addr string
	// Tag is the APP-NAME; default "mailbrake".
	Tag string
	// Facility is a syslog facility name (daemon, mail, auth, authpriv,
	// user, local0…local7); default "daemon".
	Facility string
}

// RateLimitConfig bounds how much one incident, or a storm of them, sends.
// Windows slide over one hour; a skipped send is reported, not queued.
type RateLimitConfig struct {
	// PerIncident is the number of sends per channel and incident within
	// an hour; default 5 (opened, confirmed, finished, a failed step and
	// resolved fit; a flapping incident does not flood the help desk).
	PerIncident int
	// PerHour is the number of sends per channel within an hour over all
	// incidents; default 100 (a worm-like outbreak still reaches the
	// admins, but not as thousands of mails).
	PerHour int
}

// ConfigError is one configuration problem, with the key path it is about.
type ConfigError struct {
	Path string // e.g. "notify.smtp.addr"
	Msg  string
}

func (e *ConfigError) Error() string { return e.Path + ": " + e.Msg }

const (
	defaultSMTPTimeout    = 30 * time.Second
	defaultWebhookTimeout = 10 * time.Second
	defaultRetries        = 3
	// maxRetries bounds the backoff: 1+2+…+30s caps well under ten minutes.
	maxRetries         = 10
	defaultPerIncident = 5
	defaultPerHour     = 100
	// minSecretLen: a shorter HMAC key is guessable offline from one signed
	// request.
	minSecretLen = 16
)

// settings is the validated, defaulted form of Config.
type settings struct {
	smtp struct {
		on        bool
		addr      string
		host      string
		hello     string
		from      *mail.Address
		starttls  string
		username  string
		password  string
		roots     *x509.CertPool
		timeout   time.Duration
		helpDesk  []*mail.Address
		admins    []*mail.Address
		notifyUsr bool
	}
	webhook struct {
		on       bool
		url      string
		redacted string
		secret   []byte
		timeout  time.Duration
		retries  int
	}
	syslog struct {
		on       bool
		network  string // as passed to net.Dial
		addr     string
		tag      string
		facility int
	}
	perIncident int
	perHour     int
}

var facilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
	"uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

// validate checks cfg and returns the settings and every problem found.
func validate(cfg Config) (*settings, []error) {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, &ConfigError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	s := &settings{}

	// Mail.
	sc := cfg.SMTP
	wantMail := len(cfg.HelpDesk) > 0 || len(cfg.Admins) > 0 || cfg.NotifyUser
	if sc.Addr == "" && wantMail {
		add("notify.smtp.addr", "required when helpdesk, admins or notify_user is set")
	}
	if sc.Addr != "" && !wantMail {
		add("notify.smtp", "no recipients: set helpdesk, admins or notify_user")
	}
	if sc.Addr != "" {
		s.smtp.on = true
		s.smtp.addr = sc.Addr
		host, _, err := splitHostPort(sc.Addr)
		if err != nil {
			add("notify.smtp.addr", "%v", err)
		}
		s.smtp.host = host

		s.smtp.hello = sc.HelloName
		if s.smtp.hello == "" {
			h, err := os.Hostname()
			if err != nil || !validDomain(h) {
				add("notify.smtp.hello_name", "required: the host name %q is not a domain name", h)
			}
			s.smtp.hello = h
		} else if !validDomain(sc.HelloName) {
			add("notify.smtp.hello_name", "not a domain name: %q", sc.HelloName)
		}

		if sc.From == "" {
			add("notify.smtp.from", "required")
		} else if a, err := parseAddress(sc.From); err != nil {
			add("notify.smtp.from", "%v", err)
		} else {
			s.smtp.from = a
		}

		s.smtp.starttls = sc.StartTLS
		switch sc.StartTLS {
		case "":
			s.smtp.starttls = "opportunistic"
		case "none", "opportunistic", "required":
		default:
			add("notify.smtp.starttls", "must be one of none, opportunistic, required, got %q", sc.StartTLS)
		}

		if sc.CAFile != "" {
			pem, err := os.ReadFile(sc.CAFile)
			if err != nil {
				add("notify.smtp.ca_file", "%v", err)
			} else {
				pool := x509.NewCertPool()
				if !pool.AppendCertsFromPEM(pem) {
					add("notify.smtp.ca_file", "no PEM certificate in %s", sc.CAFile)
				}
				s.smtp.roots = pool
			}
		}

		s.smtp.username = sc.Username
		switch {
		case sc.Username == "" && sc.PasswordFile != "":
			add("notify.smtp.username", "required when password_file is set")
		case sc.Username != "" && sc.PasswordFile == "":
			add("notify.smtp.password_file", "required when username is set")
		case sc.Username != "":
			if strings.ContainsAny(sc.Username, "\x00\r\n") {
				add("notify.smtp.username", "contains NUL, CR or LF")
			}
			pw, err := readSecret(sc.PasswordFile)
			if err != nil {
				add("notify.smtp.password_file", "%v", err)
			} else if strings.ContainsAny(pw, "\x00\r\n") {
				add("notify.smtp.password_file", "password contains NUL, CR or LF")
			}
			s.smtp.password = pw
			verified := s.smtp.starttls == "required" || (s.smtp.starttls == "opportunistic" && sc.CAFile != "")
			if !verified && !loopbackHost(host) {
				add("notify.smtp.username", "AUTH needs starttls: required (or opportunistic with ca_file) unless smtp.addr is a loopback address")
			}
		}

		s.smtp.timeout = sc.Timeout
		if sc.Timeout == 0 {
			s.smtp.timeout = defaultSMTPTimeout
		} else if sc.Timeout < 0 {
			add("notify.smtp.timeout", "must not be negative")
		}
	}
	for i, r := range cfg.HelpDesk {
		a, err := parseAddress(r)
		if err != nil {
			add(fmt.Sprintf("notify.helpdesk[%d]", i), "%v", err)
			continue
		}
		s.smtp.helpDesk = append(s.smtp.helpDesk, a)
	}
	for i, r := range cfg.Admins {
		a, err := parseAddress(r)
		if err != nil {
			add(fmt.Sprintf("notify.admins[%d]", i), "%v", err)
			continue
		}
		s.smtp.admins = append(s.smtp.admins, a)
	}
	s.smtp.notifyUsr = cfg.NotifyUser
	if utf8.RuneCountInString(cfg.HelpDeskContact) > maxLine {
		add("notify.helpdesk_contact", "longer than %d characters", maxLine)
	}

	// Webhook.
	wc := cfg.Webhook
	if wc.URL == "" {
		if wc.SecretFile != "" {
			add("notify.webhook.url", "required when secret_file is set")
		}
	} else {
		s.webhook.on = true
		u, err := url.Parse(wc.URL)
		switch {
		case err != nil:
			add("notify.webhook.url", "%v", err)
		case u.Scheme != "http" && u.Scheme != "https":
			add("notify.webhook.url", "scheme must be http or https, got %q", u.Scheme)
		case u.Host == "":
			add("notify.webhook.url", "missing host")
		default:
			s.webhook.url = wc.URL
			// Logs and results name the host only: hook URLs often carry
			// a token in the path or query (Slack, Teams, Mattermost).
			s.webhook.redacted = u.Scheme + "://" + u.Host
			if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
				s.webhook.redacted += "/…"
			}
		}
		if wc.SecretFile == "" {
			add("notify.webhook.secret_file", "required: every request is signed")
		} else if sec, err := readSecret(wc.SecretFile); err != nil {
			add("notify.webhook.secret_file", "%v", err)
		} else if len(sec) < minSecretLen {
			add("notify.webhook.secret_file", "secret shorter than %d bytes", minSecretLen)
		} else {
			s.webhook.secret = []byte(sec)
		}
		s.webhook.timeout = wc.Timeout
		if wc.Timeout == 0 {
			s.webhook.timeout = defaultWebhookTimeout
		} else if wc.Timeout < 0 {
			add("notify.webhook.timeout", "must not be negative")
		}
		switch {
		case wc.Retries == 0:
			s.webhook.retries = defaultRetries
		case wc.Retries < 0:
			s.webhook.retries = 0
		case wc.Retries > maxRetries:
			add("notify.webhook.retries", "at most %d", maxRetries)
		default:
			s.webhook.retries = wc.Retries
		}
	}

	// Syslog.
	yc := cfg.Syslog
	if yc.Network != "" || yc.Addr != "" {
		s.syslog.on = true
		s.syslog.addr = yc.Addr
		switch yc.Network {
		case "", "udp", "tcp":
			s.syslog.network = yc.Network
			if s.syslog.network == "" {
				s.syslog.network = "udp"
			}
			if yc.Addr == "" {
				add("notify.syslog.addr", "required for %s", s.syslog.network)
			} else if _, _, err := splitHostPort(yc.Addr); err != nil {
				add("notify.syslog.addr", "%v", err)
			}
		case "unix":
			s.syslog.network = "unixgram"
			if yc.Addr == "" {
				s.syslog.addr = "/dev/log"
			}
		default:
			add("notify.syslog.network", "must be one of udp, tcp, unix, got %q", yc.Network)
		}
		s.syslog.tag = yc.Tag
		if s.syslog.tag == "" {
			s.syslog.tag = "mailbrake"
		} else if !printUSASCII(s.syslog.tag, 48) {
			add("notify.syslog.tag", "must be 1 to 48 printable ASCII characters without spaces (RFC 5424 APP-NAME)")
		}
		fac := yc.Facility
		if fac == "" {
			fac = "daemon"
		}
		f, ok := facilities[fac]
		if !ok {
			add("notify.syslog.facility", "unknown facility %q", yc.Facility)
		}
		s.syslog.facility = f
	}

	// Rate limits.
	s.perIncident, s.perHour = cfg.RateLimit.PerIncident, cfg.RateLimit.PerHour
	if s.perIncident == 0 {
		s.perIncident = defaultPerIncident
	} else if s.perIncident < 0 {
		add("notify.per_incident", "must not be negative")
	}
	if s.perHour == 0 {
		s.perHour = defaultPerHour
	} else if s.perHour < 0 {
		add("notify.per_hour", "must not be negative")
	}

	if !s.smtp.on && !s.webhook.on && !s.syslog.on && len(errs) == 0 {
		add("notify", "no channel configured: set smtp, webhook or syslog")
	}
	return s, errs
}

// splitHostPort is net.SplitHostPort with short messages for config errors.
func splitHostPort(addr string) (host, port string, err error) {
	host, port, err = net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return "", "", errors.New(ae.Err)
		}
		return "", "", err
	}
	if host == "" {
		return "", "", errors.New("missing host")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", "", fmt.Errorf("bad port %q", port)
	}
	return host, port, nil
}

// readSecret reads a one-line secret file. The content never appears in
// an error.
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// parseAddress parses one RFC 5322 address and refuses anything that
// would not survive in a header or an SMTP command.
func parseAddress(s string) (*mail.Address, error) {
	if strings.ContainsAny(s, "\r\n\x00") {
		return nil, errors.New("address contains CR, LF or NUL")
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return nil, fmt.Errorf("bad address %q: %w", s, err)
	}
	if strings.ContainsAny(a.Address, " <>\t") {
		return nil, fmt.Errorf("bad address %q", s)
	}
	return a, nil
}

// validDomain reports whether s is a plausible EHLO name and Message-ID
// domain: dot-separated labels of letters, digits and hyphens.
func validDomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// loopbackHost reports whether host names the local machine.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// printUSASCII reports whether s is 1..max characters of %d33-126
// (RFC 5424 PRINTUSASCII).
func printUSASCII(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 {
			return false
		}
	}
	return true
}
