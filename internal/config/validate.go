package config

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/mailbrake/mailbrake/internal/playbook"
	"github.com/mailbrake/mailbrake/internal/verdict"
)

var reasonRe = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// Validate checks the parts of the configuration that do not need the
// engine: listeners, networks, which verdicts a setting takes and the
// shape of every rule. Enumerations were checked as Load decoded them
// (enums.go, verdict.Action). The engine checks facts and values when it
// compiles the rules.
func (c *Config) Validate() Errors {
	var errs Errors
	add := func(path, format string, args ...any) {
		errs = append(errs, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	if strings.TrimSpace(c.DataDir) == "" {
		add("data_dir", "must not be empty")
	}
	// verdictOf: a verdict setting that only some verdicts make sense for
	// (the value itself was decoded, and checked, by Load).
	verdictOf := func(path string, v verdict.Action, allowed ...verdict.Action) {
		if slices.Contains(allowed, v) {
			return
		}
		names := make([]string, len(allowed))
		for i, a := range allowed {
			names[i] = a.String()
		}
		add(path, "must be one of %s, got %q", strings.Join(names, ", "), v)
	}
	if c.Policy.Enabled {
		if err := checkListen(c.Policy.Listen, true); err != nil {
			add("policy.listen", "%v", err)
		}
	}
	if c.Milter.Enabled {
		if err := checkListen(c.Milter.Listen, true); err != nil {
			add("milter.listen", "%v", err)
		}
	}
	if c.HTTP.Enabled {
		if err := checkListen(c.HTTP.Listen, false); err != nil {
			add("http.listen", "%v", err)
		}
	}
	// Two listeners on one address: serve would fail to bind the second.
	type listener struct{ key, addr string }
	var ls []listener
	for _, l := range []struct {
		on        bool
		key, addr string
	}{{c.Policy.Enabled, "policy.listen", c.Policy.Listen}, {c.Milter.Enabled, "milter.listen", c.Milter.Listen}, {c.HTTP.Enabled, "http.listen", c.HTTP.Listen}} {
		if !l.on {
			continue
		}
		for _, o := range ls {
			if listenCollide(o.addr, l.addr) {
				add(l.key, "same address as %s (%s)", o.key, o.addr)
			}
		}
		ls = append(ls, listener{l.key, l.addr})
	}
	for i, n := range c.Identity.TrustedNetworks {
		if _, err := netip.ParsePrefix(n); err != nil {
			if _, err2 := netip.ParseAddr(n); err2 != nil {
				add(fmt.Sprintf("identity.trusted_networks[%d]", i), "not a CIDR or address: %q", n)
			}
		}
	}
	if h := c.Identity.AccountHeader; h != "" && !validHeaderName(h) {
		add("identity.account_header", "not a valid header name: %q", h)
	}
	verdictOf("identity.forged_verdict", c.Identity.ForgedVerdict, verdict.Hold, verdict.Tag, verdict.Allow)
	if c.Identity.ForgedScore < 0 {
		add("identity.forged_score", "must not be negative")
	}
	if c.Identity.ClientMismatchScore < 0 {
		add("identity.client_mismatch_score", "must not be negative")
	}
	if c.Postfix.Postsuper == "" {
		add("postfix.postsuper", "must not be empty")
	}
	if c.Postfix.Postqueue == "" {
		add("postfix.postqueue", "must not be empty")
	}
	for i, l := range c.Postfix.ReinjectionListeners {
		if _, err := netip.ParseAddrPort(l); err != nil {
			add(fmt.Sprintf("postfix.reinjection_listeners[%d]", i), "not an address:port (IPv6 in brackets): %q", l)
		}
	}
	if c.Quarantine.PreviewBytes < 0 || c.Quarantine.PreviewBytes > 1<<20 {
		add("quarantine.preview_bytes", "must be between 0 and 1048576, got %d", c.Quarantine.PreviewBytes)
	}
	for key, d := range map[string]Duration{"retention.previews": c.Retention.Previews, "retention.holds": c.Retention.Holds, "retention.audit": c.Retention.Audit} {
		if d.D() < 0 || (d.D() > 0 && d.D() < 24*time.Hour) {
			add(key, "must be 0 (kept forever) or at least 24h, got %s", d)
		}
	}
	verdictOf("engine.on_error", c.Engine.OnError, verdict.Allow, verdict.Defer)
	if d := c.Engine.ForgetIdleAfter.D(); d != 0 && d < 24*time.Hour {
		add("engine.forget_idle_after", "must be 0 (each detector's window) or at least 24h, got %s", c.Engine.ForgetIdleAfter)
	}
	if c.Accounts.WatchScore < 0 {
		add("accounts.watch_score", "must not be negative")
	}
	if c.Accounts.RestrictScore < 0 {
		add("accounts.restrict_score", "must not be negative")
	}
	if c.Accounts.WatchScore > 0 && c.Accounts.RestrictScore > 0 && c.Accounts.WatchScore > c.Accounts.RestrictScore {
		add("accounts.watch_score", "must not be above restrict_score")
	}
	if w := c.Accounts.ScoreWindow.D(); w != time.Hour && w != 24*time.Hour {
		add("accounts.score_window", "must be 1h or 24h, got %s", w)
	}

	if b := c.Baseline; b.Enabled {
		verdictOf("baseline.verdict", b.Verdict, verdict.Tag, verdict.Hold, verdict.Defer, verdict.Reject)
		verdictOf("baseline.new_client_verdict", b.NewClientVerdict, verdict.Allow, verdict.Tag, verdict.Hold, verdict.Defer, verdict.Reject)
		if b.Days < 2 || b.Days > 366 {
			add("baseline.days", "must be between 2 and 366, got %d", b.Days)
		}
		if b.Factor < 1 {
			add("baseline.factor", "must be at least 1, got %g", b.Factor)
		}
		if b.FloorHour < 1 || b.FloorDay < 1 {
			add("baseline.floor_hour", "floors must be positive")
		}
		if b.MinHistoryDays < 1 || b.MinHistoryDays >= b.Days {
			add("baseline.min_history_days", "must be between 1 and days-1, got %d", b.MinHistoryDays)
		}
	}
	if c.Phish.Enabled {
		verdictOf("phish.verdict", c.Phish.Verdict, verdict.Tag, verdict.Hold, verdict.Defer, verdict.Reject)
		if c.Phish.Retention.D() <= 0 {
			add("phish.retention", "must be positive")
		}
		for i, h := range c.Phish.HeaderMatches {
			p := fmt.Sprintf("phish.header_matches[%d]", i)
			if !validHeaderName(h.Header) || h.Header == "" {
				add(p+".header", "not a valid header name: %q", h.Header)
			}
			if _, err := regexp.Compile(h.Matches); err != nil {
				add(p+".matches", "invalid regular expression: %v", err)
			}
		}
	}
	if n := c.Novelty; n.Enabled {
		verdictOf("novelty.verdict", n.Verdict, verdict.Tag, verdict.Hold, verdict.Defer, verdict.Reject)
		if n.Lookback.D() < 24*time.Hour {
			add("novelty.lookback", "must be at least 24h, got %s", n.Lookback)
		}
		if n.MaxPerAccount < 10 || n.MaxPerAccount > 1_000_000 {
			add("novelty.max_per_account", "must be between 10 and 1000000, got %d", n.MaxPerAccount)
		}
		if n.KeyFile == "" {
			add("novelty.key_file", "must not be empty")
		}
		if n.FirstTimeHour < 0 || n.FirstTimeDay < 0 {
			add("novelty.first_time_day", "limits must not be negative")
		}
		if n.Score < 0 || n.Score > 1000 {
			add("novelty.score", "must be between 0 and 1000, got %d", n.Score)
		}
		for i, d := range n.LocalDomains {
			if d == "" || strings.ContainsAny(d, "@ \t") {
				add(fmt.Sprintf("novelty.local_domains[%d]", i), "not a domain: %q", d)
			}
		}
	}
	if d := c.Policy.DecisionTimeout.D(); d < 100*time.Millisecond || d > 60*time.Second {
		add("policy.decision_timeout", "must be between 100ms and 60s (under the timeout Postfix gives the service), got %s", c.Policy.DecisionTimeout)
	}
	if k := c.Campaign; k.Enabled {
		verdictOf("campaign.verdict", k.Verdict, verdict.Tag, verdict.Hold, verdict.Defer, verdict.Reject)
		for _, f := range []struct {
			key string
			v   int
		}{{"day_messages", k.DayMessages}, {"day_first_time", k.DayFirstTime}, {"week_messages", k.WeekMessages}, {"week_first_time", k.WeekFirstTime},
			{"lure_messages", k.LureMessages}, {"lure_first_time", k.LureFirstTime}} {
			if f.v < 2 {
				add("campaign."+f.key, "must be at least 2 (one message is never a run), got %d", f.v)
			}
		}
		if k.AcrossAccounts == 1 || k.AcrossAccounts < 0 {
			add("campaign.across_accounts", "must be 0 (off) or at least 2, got %d", k.AcrossAccounts)
		}
		if k.NewLinkFirstTime < 0 {
			add("campaign.new_link_first_time", "must not be negative, got %d", k.NewLinkFirstTime)
		}
		if k.MaxPerAccount < 16 || k.MaxPerAccount > 100_000 {
			add("campaign.max_per_account", "must be between 16 and 100000, got %d", k.MaxPerAccount)
		}
		if k.MaxSite < 100 || k.MaxSite > 10_000_000 {
			add("campaign.max_site", "must be between 100 and 10000000, got %d", k.MaxSite)
		}
		if k.Score < 0 || k.Score > 1000 {
			add("campaign.score", "must be between 0 and 1000, got %d", k.Score)
		}
	}
	if o := c.Origin; o.Enabled {
		verdictOf("origin.shared_verdict", o.SharedVerdict, verdict.Allow, verdict.Tag, verdict.Hold)
		for i, n := range o.SiteNetworks {
			if _, err := netip.ParsePrefix(n); err != nil {
				add(fmt.Sprintf("origin.site_networks[%d]", i), "not a network in CIDR form: %q", n)
			}
		}
		if o.SharedAccounts < 2 {
			add("origin.shared_accounts", "must be at least 2, got %d", o.SharedAccounts)
		}
		if o.NewPrefixScore < 0 || o.NewPrefixScore > 1000 || o.SharedScore < 0 || o.SharedScore > 1000 {
			add("origin.shared_score", "scores must be between 0 and 1000")
		}
		if o.MaxPerAccount < 4 || o.MaxPerAccount > 10_000 {
			add("origin.max_per_account", "must be between 4 and 10000, got %d", o.MaxPerAccount)
		}
		if o.MaxSite < 100 || o.MaxSite > 10_000_000 {
			add("origin.max_site", "must be between 100 and 10000000, got %d", o.MaxSite)
		}
	}
	if p := c.Phishers; len(p.Lists) > 0 || len(p.Blocklist) > 0 {
		verdictOf("phishers.verdict", p.Verdict, verdict.Tag, verdict.Hold, verdict.Defer, verdict.Reject)
		verdictOf("phishers.inbound_verdict", p.InboundVerdict, verdict.Allow, verdict.Tag, verdict.Hold, verdict.Reject)
		if p.Score < 0 || p.Score > 1000 {
			add("phishers.score", "must be between 0 and 1000, got %d", p.Score)
		}
		if p.Reload.D() < time.Second {
			add("phishers.reload", "must be at least 1s, got %s", p.Reload)
		}
	}
	for _, l := range []struct {
		key   string
		files []string
	}{{"phishers.lists", c.Phishers.Lists}, {"phishers.cleared", c.Phishers.Cleared}, {"phishers.blocklist", c.Phishers.Blocklist}, {"phishers.allowlist", c.Phishers.Allowlist}} {
		for i, f := range l.files {
			if f == "" {
				add(fmt.Sprintf("%s[%d]", l.key, i), "must not be empty")
			}
		}
	}
	if len(c.Phishers.Cleared) > 0 && len(c.Phishers.Lists) == 0 {
		add("phishers.cleared", "cleared files need at least one file in phishers.lists")
	}
	if pl := c.PasswordLeak; pl.Enabled {
		verdictOf("password_leak.verdict", pl.Verdict, verdict.Hold, verdict.Defer, verdict.Reject)
		if pl.MinLength < 1 || pl.MaxLength < pl.MinLength || pl.MaxLength > 1024 {
			add("password_leak.max_length", "need 1 <= min_length <= max_length <= 1024, got %d and %d", pl.MinLength, pl.MaxLength)
		}
		if pl.MaxScanBytes < 1024 || pl.MaxScanBytes > 64<<20 {
			add("password_leak.max_scan_bytes", "must be between 1024 and 67108864, got %d", pl.MaxScanBytes)
		}
		if pl.Workers < 1 || pl.Workers > 64 {
			add("password_leak.workers", "must be between 1 and 64, got %d", pl.Workers)
		}
		if pl.MaxCandidates < 1 || pl.MaxSlowCandidates < 0 {
			add("password_leak.max_candidates", "must be positive")
		}
	}
	pbNames := map[string]int{}
	triggers := map[string]string{}
	defaultNames := map[string]bool{}
	for _, d := range DefaultPlaybooks() {
		defaultNames[d.Name] = true
	}
	for i, pb := range c.Playbooks {
		p := fmt.Sprintf("playbooks[%d]", i)
		if pb.Name == "" {
			add(p+".name", "must not be empty")
		} else if j, dup := pbNames[pb.Name]; dup {
			add(p+".name", "duplicate playbook name %q (also playbooks[%d])", pb.Name, j)
		} else {
			pbNames[pb.Name] = i
		}
		if pb.Disabled {
			if !defaultNames[pb.Name] {
				add(p+".disabled", "%q is not a default playbook (defaults: %s); remove the entry instead", pb.Name, strings.Join(slices.Sorted(maps.Keys(defaultNames)), ", "))
			}
			if len(pb.Triggers) > 0 || len(pb.Steps) > 0 || pb.Severity != "" || pb.ConfirmFrom != "" {
				add(p+".disabled", "a disabled playbook takes only its name")
			}
			continue
		}
		if !pb.Severity.Valid() {
			add(p+".severity", "must be one of low, medium, high, critical, got %q", pb.Severity)
		}
		if len(pb.Triggers) == 0 {
			add(p+".triggers", "a playbook needs at least one trigger")
		}
		for j, tr := range pb.Triggers {
			if !reasonRe.MatchString(tr) {
				add(fmt.Sprintf("%s.triggers[%d]", p, j), "must be a kebab-case reason, got %q", tr)
			} else if other, dup := triggers[tr]; dup {
				add(fmt.Sprintf("%s.triggers[%d]", p, j), "%q already triggers playbook %q", tr, other)
			} else {
				triggers[tr] = pb.Name
			}
		}
		seen := map[playbook.Step]bool{}
		for j, st := range pb.Steps {
			if !st.Valid() {
				add(fmt.Sprintf("%s.steps[%d]", p, j), "unknown step %q (known: %s)", st, stepNames())
			} else if seen[st] {
				add(fmt.Sprintf("%s.steps[%d]", p, j), "step %q listed twice", st)
			}
			seen[st] = true
		}
		if pb.ConfirmFrom != "" && !seen[pb.ConfirmFrom] {
			add(p+".confirm_from", "%q is not one of the playbook's steps", pb.ConfirmFrom)
		}
		at := func(step playbook.Step) int { return slices.Index(pb.Steps, step) }
		// Setting a password clears zimbraPasswordMustChange (zm-mailbox
		// LdapProvisioning.setPassword, commit 2b7f9787c69e): the demand
		// for a new password must come after the scramble.
		if f, sp := at(playbook.StepForcePasswordChange), at(playbook.StepScramblePassword); f >= 0 && sp > f {
			add(fmt.Sprintf("%s.steps[%d]", p, f), "force-password-change must come after scramble-password: setting a password clears Zimbra's zimbraPasswordMustChange")
		}
		// Raising the token validity value ends web and SOAP sessions only;
		// IMAP and POP sessions re-check nothing but the account status at
		// their next command (zm-mailbox ImapHandler.checkAccountStatus),
		// and a fresh login starts new ones: lock first.
		if e := at(playbook.StepEndSessions); e >= 0 {
			if l := at(playbook.StepLockLogin); l < 0 || l > e {
				add(fmt.Sprintf("%s.steps[%d]", p, e), "end-sessions needs lock-login before it: IMAP and POP sessions end only once the account is not active")
			}
		}
	}
	r := c.Response
	if r.Attempts < 1 || r.Attempts > 20 {
		add("response.attempts", "must be between 1 and 20, got %d", r.Attempts)
	}
	if r.UseLDAP && c.Directory.LDAP.URL == "" {
		add("response.use_ldap", "needs directory.ldap.url")
	}
	if r.UsePasswdFile && c.Directory.PasswdFile.Path == "" {
		add("response.use_passwd_file", "needs directory.passwd_file.path")
	}
	if rc := c.Cluster.Redis; rc.Address != "" {
		if _, port, err := net.SplitHostPort(rc.Address); err != nil || port == "" {
			add("cluster.redis.address", "must be host:port, got %q", rc.Address)
		}
		if rc.DB < 0 {
			add("cluster.redis.db", "must not be negative")
		}
		if time.Duration(rc.Timeout) <= 0 {
			add("cluster.redis.timeout", "must be positive")
		}
		if rc.CAFile != "" && !rc.TLS {
			add("cluster.redis.ca_file", "needs tls: true")
		}
		if rc.Cluster && rc.DB != 0 {
			add("cluster.redis.db", "must be 0 with cluster: true (a Redis Cluster has one database)")
		}
		for i, s := range rc.Seeds {
			if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
				add(fmt.Sprintf("cluster.redis.seeds[%d]", i), "must be host:port, got %q", s)
			}
		}
		if len(rc.Seeds) > 0 && !rc.Cluster {
			add("cluster.redis.seeds", "needs cluster: true")
		}
	}
	if c.Cluster.KeyFile != "" && c.Cluster.Redis.Address == "" {
		add("cluster.key_file", "needs cluster.redis.address: it signs what the nodes share through Redis")
	}
	if pc := c.Cluster.Postgres; pc.URL != "" {
		if pc.MaxConns < 0 {
			add("cluster.postgres.max_conns", "must not be negative")
		}
		if c.Cluster.Redis.Address == "" {
			// Records shared but counts and states not: an account
			// restricted on one node would send through the others.
			add("cluster.postgres.url", "needs cluster.redis.address: the nodes must share counts and account states too")
		}
	}
	if l := c.Directory.LDAP; l.URL != "" {
		if !strings.HasPrefix(l.URL, "ldap://") && !strings.HasPrefix(l.URL, "ldaps://") && !strings.HasPrefix(l.URL, "ldapi://") {
			add("directory.ldap.url", "must start with ldap://, ldaps:// or ldapi://, got %q", l.URL)
		}
		if l.BaseDN == "" {
			add("directory.ldap.base_dn", "must not be empty")
		}
		if !strings.Contains(l.Filter, "%s") {
			add("directory.ldap.filter", "must contain %%s for the account")
		}
		if l.BindDN != "" && l.BindPasswordFile == "" {
			add("directory.ldap.bind_password_file", "needed with bind_dn")
		}
	}
	if z := r.Zimbra; z.URL != "" {
		if !strings.HasPrefix(z.URL, "https://") && !strings.HasPrefix(z.URL, "http://") {
			add("response.zimbra.url", "must be an http(s) URL, got %q", z.URL)
		}
		if z.AdminUser == "" {
			add("response.zimbra.admin_user", "must not be empty")
		}
		if z.AdminPasswordFile == "" {
			add("response.zimbra.admin_password_file", "must not be empty")
		}
	}
	if dv := r.Dovecot; dv.URL != "" {
		if !strings.HasPrefix(dv.URL, "https://") && !strings.HasPrefix(dv.URL, "http://") {
			add("response.dovecot.url", "must be an http(s) URL, got %q", dv.URL)
		}
		if dv.APIKeyFile == "" {
			add("response.dovecot.api_key_file", "must not be empty")
		}
	}
	if len(r.Exec.Command) > 0 {
		if len(r.Exec.Steps) == 0 {
			add("response.exec.steps", "name the steps the command carries out")
		}
		for j, st := range r.Exec.Steps {
			if !st.Valid() {
				add(fmt.Sprintf("response.exec.steps[%d]", j), "unknown step %q (known: %s)", st, stepNames())
			}
		}
	}
	if (c.HTTP.TLSCert == "") != (c.HTTP.TLSKey == "") {
		add("http.tls_cert", "tls_cert and tls_key go together")
	}
	names := map[string]int{}
	for i, r := range c.Rules {
		p := fmt.Sprintf("rules[%d]", i)
		if r.Name == "" {
			add(p+".name", "must not be empty")
		} else if j, dup := names[r.Name]; dup {
			add(p+".name", "duplicate rule name %q (also rules[%d])", r.Name, j)
		} else {
			names[r.Name] = i
		}
		reason := r.Reason
		if reason == "" {
			reason = r.Name
		}
		if reason != "" && !reasonRe.MatchString(reason) {
			add(p+".reason", "must be kebab-case (a-z, 0-9, -), got %q", reason)
		}
		if r.Family != "" && (!r.Family.Valid() || r.Family == verdict.State) {
			add(p+".family", "must be one of volume, scripted, campaign, identity, phish, secret, got %q", r.Family)
		}
		if r.Verdict == nil {
			add(p+".verdict", "must be set: one of allow, tag, hold, defer, reject")
		} else if r.Stage == StageRcpt && (*r.Verdict == verdict.Hold || *r.Verdict == verdict.Tag) {
			add(p+".verdict", "%s is decided at end of message; use stage eom, or defer/reject at rcpt", r.Verdict)
		}
		if r.Score < 0 || r.Score > 1000 {
			add(p+".score", "must be between 0 and 1000, got %d", r.Score)
		}
		if len(r.When) == 0 {
			add(p+".when", "a rule needs at least one condition")
		}
		for j, cond := range r.When {
			cp := fmt.Sprintf("%s.when[%d]", p, j)
			if cond.Fact == "" {
				add(cp+".fact", "must not be empty")
			}
			ops := 0
			for _, set := range []bool{cond.Eq != nil, cond.Ne != nil, cond.In != nil, cond.NotIn != nil, cond.Gt != nil, cond.Gte != nil, cond.Lt != nil, cond.Lte != nil, cond.Matches != ""} {
				if set {
					ops++
				}
			}
			if ops != 1 {
				add(cp, "needs exactly one of eq, ne, in, not_in, gt, gte, lt, lte, matches (has %d)", ops)
			}
			if cond.Matches != "" {
				if _, err := regexp.Compile(cond.Matches); err != nil {
					add(cp+".matches", "invalid regular expression: %v", err)
				}
			}
		}
	}
	return errs
}

// StageOrDefault returns the rule's stage with its default applied:
// StageRcpt or StageEOM.
func (r Rule) StageOrDefault() RuleStage {
	if r.Stage == StageUnset {
		return StageEOM
	}
	return r.Stage
}

// DirectionOrDefault returns the rule's direction with its default
// applied: DirectionOutbound, DirectionInbound or DirectionAny.
func (r Rule) DirectionOrDefault() RuleDirection {
	if r.Direction == DirectionUnset {
		return DirectionOutbound
	}
	return r.Direction
}

// ReasonOrName returns the rule's reason, defaulting to its name.
func (r Rule) ReasonOrName() string {
	if r.Reason == "" {
		return r.Name
	}
	return r.Reason
}

func validHeaderName(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		if c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}

// checkListen validates host:port or, when unixOK, unix:/path.
func checkListen(s string, unixOK bool) error {
	if rest, ok := strings.CutPrefix(s, "unix:"); ok {
		if !unixOK {
			return fmt.Errorf("unix sockets are not supported here")
		}
		if !strings.HasPrefix(rest, "/") {
			return fmt.Errorf("unix socket path must be absolute, got %q", rest)
		}
		// sockaddr_un's sun_path: 108 bytes with the terminating NUL.
		if len(rest) > maxUnixPath {
			return fmt.Errorf("unix socket path is %d bytes long; the most Linux takes is %d", len(rest), maxUnixPath)
		}
		return nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("expected host:port: %v", err)
	}
	if port == "" {
		return fmt.Errorf("missing port in %q", s)
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil && host != "localhost" {
			return fmt.Errorf("host must be an IP address, got %q", host)
		}
	}
	return nil
}

// maxUnixPath is the longest unix socket path bind(2) takes on Linux.
const maxUnixPath = 107

// listenCollide reports whether binding both listen addresses fails: the
// same unix path, or the same TCP port on the same address or where one
// is the wildcard. Port 0 asks for any free port and never collides.
func listenCollide(a, b string) bool {
	na, aa := ListenNetwork(a)
	nb, ab := ListenNetwork(b)
	if na != nb {
		return false
	}
	if na == "unix" {
		return aa == ab
	}
	ha, pa, err1 := net.SplitHostPort(aa)
	hb, pb, err2 := net.SplitHostPort(ab)
	if err1 != nil || err2 != nil || pa != pb || pa == "0" {
		return false
	}
	if ha == "localhost" {
		ha = "127.0.0.1"
	}
	if hb == "localhost" {
		hb = "127.0.0.1"
	}
	switch {
	case ha == hb, ha == "" || ha == "::", hb == "" || hb == "::": // Go's "" and "::" take both families
		return true
	case ha == "0.0.0.0":
		return !strings.Contains(hb, ":")
	case hb == "0.0.0.0":
		return !strings.Contains(ha, ":")
	}
	return false
}

// ListenNetwork splits a listen address into a net.Listen network and address.
func ListenNetwork(s string) (network, addr string) {
	if rest, ok := strings.CutPrefix(s, "unix:"); ok {
		return "unix", rest
	}
	return "tcp", s
}

func slicesContains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// stepNames lists the playbook steps for an error message.
func stepNames() string {
	names := make([]string, len(playbook.Steps))
	for i, st := range playbook.Steps {
		names[i] = string(st)
	}
	return strings.Join(names, ", ")
}
