package loadgen

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// MaxDuration caps Warmup+Duration of one run. With the reply timeout and
// the watchdog on top, no run can outlive it by more than MaxTimeout plus
// a few seconds: a load generator left running by mistake must stop by
// itself.
const MaxDuration = 10 * time.Minute

// MaxTimeout caps the per-request (policy) and per-step (milter) timeout.
// A minute is already far beyond Postfix's own limits for a policy reply
// and a milter command, and it bounds how long the watchdog waits.
const MaxTimeout = time.Minute

// MaxConns caps the number of concurrent connections. Postfix's default
// smtpd process limit is 100; 1024 leaves room to overload a server on
// purpose while keeping the generator's memory small (17 KiB of histogram
// per connection).
const MaxConns = 1024

// Default targets: the listeners of mailbrake's default configuration
// (config.Default).
const (
	DefaultPolicyAddr = "127.0.0.1:10041"
	DefaultMilterAddr = "127.0.0.1:10042"
)

// X-Mailer values for MilterOptions.XMailer. XMailerZclient is what
// Zimbra's Standard HTML client writes; spam runs from phished Zimbra
// accounts are scripted through it. XMailerZimbraWeb is the Ajax web
// client a person uses.
const (
	XMailerThunderbird = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.5.0"
	XMailerZclient     = "Zimbra 9.0.0_GA_4718 (zclient/9.0.0_GA_4718)"
	XMailerZimbraWeb   = "Zimbra 9.0.0_GA_4718 (ZimbraWebClient - FF139 (Linux)/9.0.0_GA_4737)"
)

// xMailerShortcuts are the names MilterOptions.XMailer accepts besides a
// literal header value; "none" sends no X-Mailer header.
var xMailerShortcuts = map[string]string{
	"thunderbird": XMailerThunderbird,
	"zclient":     XMailerZclient,
	"zwc":         XMailerZimbraWeb,
	"none":        "",
}

// PolicyOptions configures a Postfix policy delegation load run. Zero
// values of Conns, Duration, Users, Rcpts, Timeout, State and Label take
// the defaults of DefaultPolicyOptions; a zero Skew, Rate, N, Warmup or
// Seed means what it says.
type PolicyOptions struct {
	// Addr is the policy server: host:port, inet:host:port or unix:/path.
	Addr string
	// Label names the result row; default Addr.
	Label string
	// Conns persistent connections are dialled one after another before
	// the clock starts, as Postfix smtpd processes keep theirs open; a
	// broken connection is redialled.
	Conns int
	// Duration is the measured time; the run also ends after N measured
	// requests if N > 0, whichever comes first.
	Duration time.Duration
	// Warmup runs before the measured time; its requests are not counted.
	Warmup time.Duration
	// N, if positive, is the number of measured requests to send.
	N int64
	// Users distinct sasl_username values, user00000@example.com and on.
	Users int
	// Skew is the Zipf exponent of the user distribution; <= 1 is uniform.
	Skew float64
	// State is the protocol_state sent: "RCPT", "END-OF-MESSAGE" (or
	// "EOM") or "both", which sends the RCPT requests and then one
	// END-OF-MESSAGE request per message.
	State string
	// Rcpts is the number of recipients per message (one RCPT request each).
	Rcpts int
	// Rate, if positive, paces the run at this many requests per second
	// in total (open loop, latency measured from the intended send time);
	// otherwise each connection sends as soon as it has its reply.
	Rate float64
	// Timeout bounds the wait for one reply.
	Timeout time.Duration
	// Seed makes the generated load reproducible.
	Seed int64
	// AllowRemote permits a target outside 127.0.0.0/8, ::1 and unix sockets.
	AllowRemote bool
}

// MilterOptions configures a milter load run. The generator plays
// Postfix: one milter session per SMTP session, MsgsPerConn messages per
// session. Zero values of Conns, Duration, Users, Rcpts, MsgsPerConn,
// Timeout, XMailer and Label, and BodyMin and BodyMax both zero, take the
// defaults of DefaultMilterOptions.
type MilterOptions struct {
	// Addr is the milter: host:port, inet:host:port or unix:/path.
	Addr string
	// Label names the result row; default Addr.
	Label string
	// Conns concurrent milter sessions. The first connection of each is
	// dialled before the clock starts.
	Conns int
	// Duration is the measured time; the run also ends after N measured
	// messages if N > 0, whichever comes first.
	Duration time.Duration
	// Warmup runs before the measured time; its messages are not counted.
	Warmup time.Duration
	// N, if positive, is the number of measured messages to send.
	N int64
	// Users distinct {auth_authen} values, user00000@example.com and on.
	Users int
	// Skew is the Zipf exponent of the user distribution; <= 1 is uniform.
	Skew float64
	// Rcpts is the number of recipients per message.
	Rcpts int
	// BodyMin and BodyMax bound the body size in bytes (default 5–20 KiB).
	BodyMin, BodyMax int
	// MsgsPerConn is the number of messages per milter session, as one
	// SMTP session may carry several; 1 is the common case. A session
	// ends early after any outcome but ACCEPT and QUARANTINE.
	MsgsPerConn int
	// XMailer is the X-Mailer header value, or one of the shortcuts
	// "thunderbird" (the default), "zclient", "zwc" and "none" (no header).
	XMailer string
	// Timeout bounds each milter step (Postfix's milter_command_timeout).
	Timeout time.Duration
	// Seed makes the generated load reproducible.
	Seed int64
	// AllowRemote permits a target outside 127.0.0.0/8, ::1 and unix sockets.
	AllowRemote bool
}

// DefaultPolicyOptions returns the defaults: the bench's standard load of
// 1,000 users with Zipf s = 1.1, RCPT requests, 8 connections, 10 s.
func DefaultPolicyOptions() PolicyOptions {
	return PolicyOptions{
		Addr:     DefaultPolicyAddr,
		Conns:    8,
		Duration: 10 * time.Second,
		Users:    1000,
		Skew:     1.1,
		State:    "RCPT",
		Rcpts:    1,
		Timeout:  5 * time.Second,
		Seed:     1,
	}
}

// DefaultMilterOptions returns the defaults: 1,000 users with Zipf
// s = 1.1, one recipient, 5–20 KiB bodies from Thunderbird, one message
// per session, 8 sessions, 10 s.
func DefaultMilterOptions() MilterOptions {
	return MilterOptions{
		Addr:        DefaultMilterAddr,
		Conns:       8,
		Duration:    10 * time.Second,
		Users:       1000,
		Skew:        1.1,
		Rcpts:       1,
		BodyMin:     5 << 10,
		BodyMax:     20 << 10,
		MsgsPerConn: 1,
		XMailer:     "thunderbird",
		// Postfix's milter_command_timeout.
		Timeout: 30 * time.Second,
		Seed:    1,
	}
}

// AddFlags binds o's fields to flags in fs. The current values are the
// flag defaults; a zero PolicyOptions is first set to DefaultPolicyOptions.
func (o *PolicyOptions) AddFlags(fs *pflag.FlagSet) {
	if *o == (PolicyOptions{}) {
		*o = DefaultPolicyOptions()
	}
	fs.StringVar(&o.Addr, "addr", o.Addr, "policy server: host:port, inet:host:port or unix:/path")
	fs.StringVar(&o.Label, "label", o.Label, "label of the result row (default: the address)")
	fs.IntVar(&o.Conns, "conns", o.Conns, "persistent connections, dialled before the clock starts")
	fs.DurationVar(&o.Duration, "duration", o.Duration, fmt.Sprintf("measured run time (warm-up plus duration at most %v)", MaxDuration))
	fs.DurationVar(&o.Warmup, "warmup", o.Warmup, "warm-up time before measuring")
	fs.Int64VarP(&o.N, "requests", "n", o.N, "stop after this many measured requests (0: run for --duration)")
	fs.IntVar(&o.Users, "users", o.Users, "distinct sasl_username values")
	fs.Float64Var(&o.Skew, "skew", o.Skew, "Zipf exponent of the user distribution (<= 1: uniform)")
	fs.StringVar(&o.State, "state", o.State, "protocol_state: RCPT, END-OF-MESSAGE or both (RCPTs then END-OF-MESSAGE per message)")
	fs.IntVar(&o.Rcpts, "rcpts", o.Rcpts, "recipients per message (one RCPT request each)")
	fs.Float64Var(&o.Rate, "rate", o.Rate, "total requests per second, open loop (0: closed loop)")
	fs.DurationVar(&o.Timeout, "timeout", o.Timeout, "reply timeout per request")
	fs.Int64Var(&o.Seed, "seed", o.Seed, "random seed")
	fs.BoolVar(&o.AllowRemote, "allow-remote", o.AllowRemote, "allow a target that is not on this host")
}

// AddFlags binds o's fields to flags in fs. The current values are the
// flag defaults; a zero MilterOptions is first set to DefaultMilterOptions.
func (o *MilterOptions) AddFlags(fs *pflag.FlagSet) {
	if *o == (MilterOptions{}) {
		*o = DefaultMilterOptions()
	}
	fs.StringVar(&o.Addr, "addr", o.Addr, "milter: host:port, inet:host:port or unix:/path")
	fs.StringVar(&o.Label, "label", o.Label, "label of the result row (default: the address)")
	fs.IntVar(&o.Conns, "conns", o.Conns, "concurrent milter sessions")
	fs.DurationVar(&o.Duration, "duration", o.Duration, fmt.Sprintf("measured run time (warm-up plus duration at most %v)", MaxDuration))
	fs.DurationVar(&o.Warmup, "warmup", o.Warmup, "warm-up time before measuring")
	fs.Int64VarP(&o.N, "messages", "n", o.N, "stop after this many measured messages (0: run for --duration)")
	fs.IntVar(&o.Users, "users", o.Users, "distinct {auth_authen} values")
	fs.Float64Var(&o.Skew, "skew", o.Skew, "Zipf exponent of the user distribution (<= 1: uniform)")
	fs.IntVar(&o.Rcpts, "rcpts", o.Rcpts, "recipients per message")
	fs.IntVar(&o.BodyMin, "body-min", o.BodyMin, "smallest body in bytes")
	fs.IntVar(&o.BodyMax, "body-max", o.BodyMax, "largest body in bytes")
	fs.IntVar(&o.MsgsPerConn, "msgs-per-conn", o.MsgsPerConn, "messages per milter session (Postfix: per SMTP session)")
	fs.StringVar(&o.XMailer, "x-mailer", o.XMailer, "X-Mailer header value, or thunderbird, zclient, zwc or none")
	fs.DurationVar(&o.Timeout, "timeout", o.Timeout, "timeout per milter step")
	fs.Int64Var(&o.Seed, "seed", o.Seed, "random seed")
	fs.BoolVar(&o.AllowRemote, "allow-remote", o.AllowRemote, "allow a target that is not on this host")
}

// common holds what both kinds of run share, after validation.
type common struct {
	kind             string
	addr, label      string
	conns            int
	duration, warmup time.Duration
	n                int64
	users            int
	skew             float64
	rcpts            int
	timeout          time.Duration
	seed             uint64
	allowRemote      bool
}

func (c *common) check() error {
	var errs []error
	if c.conns < 1 || c.conns > MaxConns {
		errs = append(errs, fmt.Errorf("conns: %d is not in 1..%d", c.conns, MaxConns))
	}
	if c.duration < 0 || c.warmup < 0 {
		errs = append(errs, errors.New("duration, warmup: must not be negative"))
	} else if c.duration+c.warmup > MaxDuration {
		errs = append(errs, fmt.Errorf("duration: warm-up plus duration is %v, more than %v", c.warmup+c.duration, MaxDuration))
	}
	if c.n < 0 {
		errs = append(errs, errors.New("n: must not be negative"))
	}
	if c.users < 1 {
		errs = append(errs, fmt.Errorf("users: %d is less than 1", c.users))
	}
	// 1000 is Postfix's smtpd_recipient_limit default.
	if c.rcpts < 1 || c.rcpts > 1000 {
		errs = append(errs, fmt.Errorf("rcpts: %d is not in 1..1000", c.rcpts))
	}
	if c.timeout < 0 || c.timeout > MaxTimeout {
		errs = append(errs, fmt.Errorf("timeout: %v is not in (0, %v]", c.timeout, MaxTimeout))
	}
	return errors.Join(errs...)
}

func (o PolicyOptions) normalize() (common, string, error) {
	d := DefaultPolicyOptions()
	c := common{
		kind: KindPolicy, addr: o.Addr, label: o.Label, conns: o.Conns,
		duration: o.Duration, warmup: o.Warmup, n: o.N, users: o.Users,
		skew: o.Skew, rcpts: o.Rcpts, timeout: o.Timeout, seed: uint64(o.Seed),
		allowRemote: o.AllowRemote,
	}
	fillCommon(&c, d.Addr, d.Conns, d.Duration, d.Users, d.Rcpts, d.Timeout)
	state := strings.ToUpper(o.State)
	switch state {
	case "":
		state = d.State
	case "RCPT", "END-OF-MESSAGE", "BOTH":
	case "EOM":
		state = "END-OF-MESSAGE"
	}
	errs := []error{c.check()}
	switch state {
	case "RCPT", "END-OF-MESSAGE", "BOTH":
	default:
		errs = append(errs, fmt.Errorf("state: %q is not RCPT, END-OF-MESSAGE or both", o.State))
	}
	if o.Rate < 0 {
		errs = append(errs, errors.New("rate: must not be negative"))
	}
	return c, state, errors.Join(errs...)
}

func (o MilterOptions) normalize() (common, MilterOptions, error) {
	d := DefaultMilterOptions()
	c := common{
		kind: KindMilter, addr: o.Addr, label: o.Label, conns: o.Conns,
		duration: o.Duration, warmup: o.Warmup, n: o.N, users: o.Users,
		skew: o.Skew, rcpts: o.Rcpts, timeout: o.Timeout, seed: uint64(o.Seed),
		allowRemote: o.AllowRemote,
	}
	fillCommon(&c, d.Addr, d.Conns, d.Duration, d.Users, d.Rcpts, d.Timeout)
	if o.BodyMin == 0 && o.BodyMax == 0 {
		o.BodyMin, o.BodyMax = d.BodyMin, d.BodyMax
	}
	if o.MsgsPerConn == 0 {
		o.MsgsPerConn = d.MsgsPerConn
	}
	if o.XMailer == "" {
		o.XMailer = d.XMailer
	}
	if v, ok := xMailerShortcuts[strings.ToLower(o.XMailer)]; ok {
		o.XMailer = v
	} else if strings.ContainsAny(o.XMailer, "\r\n") {
		return c, o, errors.New("x-mailer: must be one line")
	}
	errs := []error{c.check()}
	// 50 MiB is Postfix's message_size_limit default (10240000) with
	// room to spare; beyond it Postfix would refuse the message anyway.
	if o.BodyMin < 0 || o.BodyMax < o.BodyMin || o.BodyMax > 50<<20 {
		errs = append(errs, fmt.Errorf("body-min, body-max: %d..%d is not a range within 0..%d", o.BodyMin, o.BodyMax, 50<<20))
	}
	if o.MsgsPerConn < 1 {
		errs = append(errs, fmt.Errorf("msgs-per-conn: %d is less than 1", o.MsgsPerConn))
	}
	return c, o, errors.Join(errs...)
}

func fillCommon(c *common, addr string, conns int, duration time.Duration, users, rcpts int, timeout time.Duration) {
	if c.addr == "" {
		c.addr = addr
	}
	if c.label == "" {
		c.label = c.addr
	}
	if c.conns == 0 {
		c.conns = conns
	}
	if c.duration == 0 {
		c.duration = duration
	}
	if c.users == 0 {
		c.users = users
	}
	if c.rcpts == 0 {
		c.rcpts = rcpts
	}
	if c.timeout == 0 {
		c.timeout = timeout
	}
}
