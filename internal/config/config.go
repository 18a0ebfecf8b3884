package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/mailbrake/mailbrake/internal/playbook"
	"github.com/mailbrake/mailbrake/internal/store"
	"github.com/mailbrake/mailbrake/internal/verdict"
)

// Config is mailbrake's whole configuration. The struct is the source of
// truth: defaults come from Default, `mailbrake config example` is generated
// from the doc tags, and Load checks every key against it.
type Config struct {
	DataDir      string             `yaml:"data_dir" doc:"Directory for the embedded database and the admin socket. Overridden by --data-dir or MAILBRAKE_DATA_DIR."`
	Log          LogConfig          `yaml:"log" doc:"Logging."`
	Policy       PolicyConfig       `yaml:"policy" doc:"Postfix SMTP access policy delegation server (check_policy_service)."`
	Milter       MilterConfig       `yaml:"milter" doc:"Milter server (smtpd_milters)."`
	HTTP         HTTPConfig         `yaml:"http" doc:"HTTP listener for the web UI, the REST API (/api/v1/…), /healthz, /readyz and /metrics."`
	Admin        AdminConfig        `yaml:"admin" doc:"Admin API used by the mailbrake CLI: HTTP over a unix socket, access controlled by file permissions."`
	Identity     IdentityConfig     `yaml:"identity" doc:"How the sending account is determined."`
	Postfix      PostfixConfig      `yaml:"postfix" doc:"The local Postfix instance whose hold queue mailbrake manages."`
	Quarantine   QuarantineConfig   `yaml:"quarantine" doc:"What is recorded about held messages."`
	Retention    RetentionConfig    `yaml:"retention" doc:"How long records are kept; pruned hourly in the background. A message still on hold is never pruned. 0: kept forever."`
	Engine       EngineConfig       `yaml:"engine" doc:"Decision engine behaviour."`
	Accounts     AccountsConfig     `yaml:"accounts" doc:"Account states: normal, watch, restricted (every outbound message held), locked."`
	Baseline     BaselineConfig     `yaml:"baseline" doc:"Learned per-account normal: flags sending far above what the account itself usually sends, and a client family it never used on a message to many recipients."`
	Phish        PhishConfig        `yaml:"phish" doc:"Replies to phish: inbound mail tagged as spam or phish is remembered; an outbound reply to it (In-Reply-To/References, or to its Reply-To) is caught (reason reply-to-suspected-phish). Needs the milter path."`
	Novelty      NoveltyConfig      `yaml:"novelty" doc:"Recipient novelty: per account, which recipients it mailed within the lookback (kept as keyed hashes, never addresses). Gives rules the facts new_recipients, first_time_recipients_1h/_24h, distinct_recipients_1h/_24h, recipient_domains, external_recipients and external_share, and flags an account writing to many people it never wrote to."`
	Campaign     CampaignConfig     `yaml:"campaign" doc:"Campaign fingerprints (milter path, needs novelty): the same message, sent as separate messages to people the account never wrote to, is a run. Subject and body are normalised (greetings, addresses, numbers removed, links reduced to their host) and kept only as keyed hashes; per account and fingerprint, messages and first-time recipients are counted over an hour, a day and a week."`
	Origin       OriginConfig       `yaml:"origin" doc:"Where mail comes from (milter path): the SASL client's address, or the X-Originating-IP the Zimbra relay added (its last copy). Per account the prefixes (/24, /48) it used in the last 90 days; per site which accounts each address submitted for in the last day. Kept as keyed hashes."`
	Phishers     PhishersConfig     `yaml:"phishers" doc:"Known phisher reply addresses: APRL lists (ADDRESS,TYPE,DATE) and site block/allow lists. Outbound mail to a listed address is caught (reason reply-to-phisher); inbound mail whose From, Reply-To or envelope sender is listed is tagged (reason from-listed-phisher)."`
	PasswordLeak PasswordLeakConfig `yaml:"password_leak" doc:"Password-leak detection: every candidate string of an outbound message (all text parts, decoded, quoted replies included) is tested against the sender's own password hash from the directory (directory.ldap and/or directory.passwd_file). Needs the milter path: the policy path carries no content."`
	Directory    DirectoryConfig    `yaml:"directory" doc:"Where accounts live: an LDAP directory and/or a Dovecot passwd-file. Read for password hashes (password-leak detection) and, when response.use_ldap / use_passwd_file say so, written by playbooks."`
	Response     ResponseConfig     `yaml:"response" doc:"Account response: incidents, the systems playbook steps act on, and lock semantics."`
	Notify       NotifyConfig       `yaml:"notify" doc:"Who is told about incidents (the notify playbook step): e-mail to the help desk, admins and optionally the user, a signed webhook, syslog. Rate-limited per incident and per hour."`
	Playbooks    []PlaybookConfig   `yaml:"playbooks" doc:"Per trigger (finding reasons), the ordered steps an incident runs: restrict-sending, hold-queued-mail, lock-login, scramble-password, end-sessions, force-password-change, check-persistence, notify. Steps from confirm_from on wait for an admin's confirmation. A finding whose reason no playbook names opens no incident. Listed playbooks merge with the defaults: one named as a default replaces it, {name: …, disabled: true} turns a default off, another name adds a playbook, and a trigger a listed playbook takes is taken from the default that had it."`
	Cluster      ClusterConfig      `yaml:"cluster" doc:"Cluster mode: several MTA nodes, one mailbrake state. With redis.address set, every node charges the same per-account counts (messages and recipients per hour and day, finding scores) in Redis or Valkey, so a spam run split over two MTAs counts as one. Empty: everything stays in this process (the default)."`
	Rules        []Rule             `yaml:"rules" doc:"Rules, evaluated in order; every matching rule adds a finding, and the strongest verdict wins (reject > defer > hold > tag > allow)."`

	notes []string // set by Load (Notes)
	// playbookPaths names each merged playbook where the file has it
	// ("playbooks[2]") or as a default; set by Load (PlaybookPath).
	playbookPaths []string
}

// ClusterConfig configures cluster mode.
type ClusterConfig struct {
	Node     string         `yaml:"node" doc:"This node's name, as the other nodes and the UI show it; empty: the host name."`
	Redis    RedisConfig    `yaml:"redis" doc:"The shared counters' Redis or Valkey; empty address: counts stay in this process."`
	Postgres PostgresConfig `yaml:"postgres" doc:"The shared records' PostgreSQL (holds, incidents, accounts, audit, users, tokens, trust); empty url: records stay in this node's SQLite. What each node's detectors learn stays in its own SQLite either way."`
	KeyFile  string         `yaml:"key_file" doc:"A secret the same on every node (at least 32 bytes, mode 0600; e.g. openssl rand -hex 32): account states shared through Redis are signed with it and unsigned or wrongly signed ones ignored, so that whoever can write to Redis without it cannot restrict or release an account. Empty: unsigned (a configuration note says so)."`
}

// PostgresConfig configures the PostgreSQL store of cluster mode.
type PostgresConfig struct {
	URL          string `yaml:"url" doc:"libpq connection URL or key=value string, without the password, TLS included: postgres://mailbrake@db.example.edu/mailbrake?sslmode=verify-full&sslrootcert=/etc/mailbrake/db-ca.pem"`
	PasswordFile string `yaml:"password_file" doc:"File holding the password; empty: none (peer, certificate or .pgpass authentication)."`
	MaxConns     int    `yaml:"max_conns" doc:"Connections this node opens at most; 0: the larger of 4 and the number of CPUs."`
}

// RedisConfig configures the Redis client of cluster mode.
type RedisConfig struct {
	Address            string   `yaml:"address" doc:"host:port of Redis or Valkey (6379); with cluster: true, one node of the Redis Cluster (the others are found from it)."`
	Cluster            bool     `yaml:"cluster" doc:"Address is a node of a Redis Cluster (or Valkey cluster): keys are spread over its masters by account; db must be 0."`
	Seeds              []string `yaml:"seeds" doc:"With cluster: true, more nodes (host:port) to find the cluster from when address does not answer at start."`
	Username           string   `yaml:"username" doc:"ACL user; empty: the default user."`
	PasswordFile       string   `yaml:"password_file" doc:"File holding the password (requirepass or the ACL user's); empty: none."`
	DB                 int      `yaml:"db" doc:"Database number."`
	Prefix             string   `yaml:"prefix" doc:"Prefix of every key mailbrake writes, so that installations can share one Redis."`
	TLS                bool     `yaml:"tls" doc:"Connect with TLS."`
	CAFile             string   `yaml:"ca_file" doc:"CA certificates (PEM) to verify the server with TLS; empty: the system's."`
	InsecureSkipVerify bool     `yaml:"insecure_skip_verify" doc:"Do not verify the server certificate (testing only)."`
	Timeout            Duration `yaml:"timeout" doc:"Per command, dial included: a command that takes longer counts as Redis not answering. A charge is then counted in this node's memory and the node is marked degraded (mailbrake_cluster_degraded{what=\"counts\"} 1; Redis is tried again every 5 s, and what was counted meanwhile is added to it once it answers); the message is decided with the local counts, not per engine.on_error."`
}

// LogConfig configures log/slog output on stderr.
type LogConfig struct {
	Level    LogLevel    `yaml:"level" doc:"debug, info, warn or error."`
	Format   LogFormat   `yaml:"format" doc:"text or json."`
	Verdicts LogVerdicts `yaml:"verdicts" doc:"Which decisions get a log line (queue ID, account, client family, reasons, how long it took): non-allow, or all (every message, at info)."`
}

// PolicyConfig configures the policy delegation listener.
type PolicyConfig struct {
	Enabled bool     `yaml:"enabled" doc:"Serve the policy protocol."`
	Listen  string   `yaml:"listen" doc:"host:port, or unix:/path for a unix socket."`
	MaxIdle Duration `yaml:"max_idle" doc:"Close a policy connection idle this long; longer than Postfix's smtpd_policy_service_max_idle (300s) so Postfix closes idle connections first."`
	// DecisionTimeout: postfix-config wires the service with timeout=10s.
	DecisionTimeout Duration `yaml:"decision_timeout" doc:"A request not decided within this long (the store locked, a slow disk) is answered with engine.on_error's verdict instead of none; well under the timeout Postfix gives the service (10s as postfix-config wires it), after which Postfix would apply its default_action."`
}

// MilterConfig configures the milter listener.
type MilterConfig struct {
	Enabled bool          `yaml:"enabled" doc:"Serve the milter protocol."`
	Listen  string        `yaml:"listen" doc:"host:port, or unix:/path for a unix socket."`
	OnError MilterOnError `yaml:"on_error" doc:"Answer when the decision fails: tempfail (451, the message stays with the client) or accept."`
}

// HTTPConfig configures the HTTP listener.
type HTTPConfig struct {
	Enabled bool   `yaml:"enabled" doc:"Serve the web UI, the REST API (/api/v1/…), health (/healthz, /readyz) and metrics (/metrics)."`
	Listen  string `yaml:"listen" doc:"host:port. Anything but loopback without TLS is warned about at start: sessions and API tokens would cross the network in clear."`
	TLSCert string `yaml:"tls_cert" doc:"Certificate chain (PEM) for HTTPS; with tls_key. Session cookies are then Secure."`
	TLSKey  string `yaml:"tls_key" doc:"Private key (PEM) for HTTPS."`
}

// AdminConfig configures the admin API socket.
type AdminConfig struct {
	Socket string `yaml:"socket" doc:"Unix socket path; empty means <data_dir>/admin.sock. Created with mode 0600: only its owner (and root) may use the CLI."`
	Group  string `yaml:"group" doc:"Optional group allowed to use the socket (mode becomes 0660). Needs socket outside data_dir, which is kept 0700; a directory mailbrake creates for the socket is 0750 with this group."`
}

// IdentityConfig decides whose counters a message is charged to.
type IdentityConfig struct {
	TrustedNetworks     []string        `yaml:"trusted_networks" doc:"Clients (CIDR) trusted to name the account in account_header, e.g. the Zimbra mailbox servers. For other clients the header is ignored."`
	AccountHeader       string          `yaml:"account_header" doc:"Header naming the account on relayed webmail (Zimbra: zimbraSmtpSendAddAuthenticatedUser=TRUE adds X-Authenticated-User). Only the last copy counts: the relay adds its own after any copy the client wrote. Configure it only if the relay always adds it."`
	RelayedOnPolicy     RelayedOnPolicy `yaml:"relayed_on_policy" doc:"Mail from trusted_networks without SASL on the policy path, which sees no headers: milter (the milter names the account from account_header and decides; the policy path answers DUNNO and charges nothing) or sender (the policy path charges the envelope sender; only for sites without the milter, since the sender is not always the account: aliases, personas, send-as)."`
	ForgedVerdict       verdict.Action  `yaml:"forged_verdict" doc:"Verdict for a message whose account header appears more than once with different accounts (reason identity-header-forged; the account is the relay's, the last copy): hold, tag or allow."`
	ForgedScore         int             `yaml:"forged_score" doc:"Points identity-header-forged adds to the relay-named account's score."`
	ClientMismatchScore int             `yaml:"client_mismatch_score" doc:"Points added when the message's X-Mailer copies name different client families (reason client-header-mismatch; the relay's copy, the last, decides the family). Evidence only: the verdict is allow, since real clients do it too (a message composed by one client and sent through Zimbra by another)."`
}

// PostfixConfig locates the Postfix tools.
type PostfixConfig struct {
	ConfigDir    string   `yaml:"config_dir" doc:"Postfix configuration directory passed as -c to postsuper/postqueue; empty for the default instance."`
	Postsuper    string   `yaml:"postsuper" doc:"postsuper command."`
	Postqueue    string   `yaml:"postqueue" doc:"postqueue command."`
	Postconf     string   `yaml:"postconf" doc:"postconf command; empty: the one beside postsuper when postsuper is a path, else from PATH."`
	Postcat      string   `yaml:"postcat" doc:"postcat command (reads a held message's headers for the queue sync); empty: beside postsuper, else from PATH."`
	SyncInterval Duration `yaml:"sync_interval" doc:"How often held messages are reconciled with the real queue (postqueue -j); 0 turns the periodic sync off (it still runs once at start)."`
	SyncGrace    Duration `yaml:"sync_grace" doc:"Holds and hold-queue entries younger than this are left alone by the sync: Postfix writes the queue file after mailbrake's answer, and mailbrake writes its record a moment later."`
	// ReinjectionListeners: see the doc tag.
	ReinjectionListeners []string `yaml:"reinjection_listeners" doc:"smtpd listeners (address:port) that take mail back from a content filter: amavis or another FILTER_README re-injection service (Zimbra: [127.0.0.1]:10025). Mail arriving there passed mailbrake already: it is neither charged nor held again, and the spam tags the filter added are learned (phish.trust_tags). Give these listeners mailbrake's milter with the master.cf lines postfix-config prints. Mail re-injected elsewhere is recognised by its Received header naming a message mailbrake just saw."`
}

// QuarantineConfig configures hold records.
type QuarantineConfig struct {
	PreviewBytes int `yaml:"preview_bytes" doc:"Bytes of body kept as a preview of each message held by the milter."`
}

// RetentionConfig bounds how long records are kept.
type RetentionConfig struct {
	Previews Duration `yaml:"previews" doc:"The headers and text preview of a message that left the hold queue (released, deleted, expired) are cleared this long after; the record stays."`
	Holds    Duration `yaml:"holds" doc:"Hold records of messages that left the hold queue are deleted this long after."`
	Audit    Duration `yaml:"audit" doc:"Audit entries are deleted this long after."`
}

// EngineConfig configures the decision engine.
type EngineConfig struct {
	OnError verdict.Action `yaml:"on_error" doc:"Verdict when the engine cannot decide (a store error): allow (fail open) or defer (fail closed with a 4xx)."`
	Shadow  bool           `yaml:"shadow" doc:"Shadow mode: log and count the verdict every message would get, but act on none (every message is allowed; account states do not change)."`
	// ForgetIdleAfter bounds the memory kept for accounts that stopped
	// sending.
	ForgetIdleAfter Duration `yaml:"forget_idle_after" doc:"Forget, in memory and in the stored state, every account that sent nothing for this long (at least 24h; 0: each detector's own window decides — baseline.days of baseline history, novelty.lookback of known recipients, a week of campaign runs, 90 days of origins). Shorter saves memory on sites with many occasional senders; a returning account starts learning again."`
}

// BaselineConfig configures the learned-baseline detector.
type BaselineConfig struct {
	Enabled           bool           `yaml:"enabled" doc:"Learn each account's normal and flag sending above it."`
	Days              int            `yaml:"days" doc:"Days of history the normal is learned from."`
	Factor            float64        `yaml:"factor" doc:"Flag when the current hour (day) exceeds this many times the account's 90th-percentile peak hour (median day)."`
	FloorHour         int            `yaml:"floor_hour" doc:"Never flag fewer recipients than this in an hour; also the limit for accounts with less than min_history_days of history."`
	FloorDay          int            `yaml:"floor_day" doc:"Never flag fewer recipients than this in a day."`
	MinHistoryDays    int            `yaml:"min_history_days" doc:"Days of history before the learned normal is used instead of the floors."`
	Verdict           verdict.Action `yaml:"verdict" doc:"Verdict when above the normal: tag, hold, defer or reject."`
	Score             int            `yaml:"score" doc:"Points a finding adds to the account's score."`
	DryRun            bool           `yaml:"dry_run" doc:"Report without acting."`
	NewClientVerdict  verdict.Action `yaml:"new_client_verdict" doc:"Verdict for a client family the account never used, on a message with new_client_min_recipients or more: allow (score only), tag, hold, defer or reject."`
	NewClientScore    int            `yaml:"new_client_score" doc:"Points a new client family adds."`
	NewClientMinRcpts int            `yaml:"new_client_min_recipients" doc:"Recipients from which a new client family counts."`
}

// PhishConfig configures the replies-to-phish detector.
type PhishConfig struct {
	Enabled       bool           `yaml:"enabled" doc:"Remember tagged inbound mail and check outbound replies."`
	Retention     Duration       `yaml:"retention" doc:"How long tagged inbound mail is remembered."`
	SpamFlag      bool           `yaml:"spam_flag" doc:"X-Spam-Flag: YES tags a message."`
	SubjectTags   []string       `yaml:"subject_tags" doc:"Subject tags (case-insensitive substrings) that tag a message."`
	HeaderMatches []HeaderMatch  `yaml:"header_matches" doc:"Header regular expressions that tag a message."`
	Verdict       verdict.Action `yaml:"verdict" doc:"Verdict for a reply: hold, tag, defer or reject."`
	Score         int            `yaml:"score" doc:"Points a reply adds to the account's score."`
	DryRun        bool           `yaml:"dry_run" doc:"Report replies without acting."`
	TrustTags     TrustTags      `yaml:"trust_tags" doc:"Which tags are believed. reinjection: only tags a content filter added after mailbrake's first look (seen on a postfix.reinjection_listeners listener; a tag the message already carried when it arrived was written by its sender and is ignored). first-pass: tags on the message as it arrives (anyone can write them). auto: first-pass until re-injected mail is seen, then reinjection."`
}

// NoveltyConfig configures the recipient-novelty detector.
type NoveltyConfig struct {
	Enabled       bool           `yaml:"enabled" doc:"Track the recipients each account mails."`
	Lookback      Duration       `yaml:"lookback" doc:"A recipient the account has not mailed for this long is first-time again."`
	MaxPerAccount int            `yaml:"max_per_account" doc:"Recipients remembered per account (least recently mailed forgotten first); about 56 bytes each."`
	KeyFile       string         `yaml:"key_file" doc:"Secret key the recipients are hashed under, relative to data_dir; created (32 random bytes, mode 0600) when missing. With another key the remembered recipients are forgotten."`
	LocalDomains  []string       `yaml:"local_domains" doc:"Domains whose recipients are internal (for external_recipients and external_share); empty: only the sending account's own domain."`
	FirstTimeHour int            `yaml:"first_time_hour" doc:"Flag an account that has mailed more than this many first-time recipients in the last hour (0: off)."`
	FirstTimeDay  int            `yaml:"first_time_day" doc:"Flag an account that has mailed more than this many first-time recipients in the last 24 hours (0: off)."`
	Learning      Duration       `yaml:"learning" doc:"For this long after mailbrake first sees outbound mail (a new installation, or remembered recipients lost), novelty, baseline, campaign and origin (new-origin, shared-origin) findings are reported as dry-run while each account's correspondents and normal are learned."`
	Verdict       verdict.Action `yaml:"verdict" doc:"Verdict when an account is flagged: tag, hold, defer or reject."`
	Score         int            `yaml:"score" doc:"Points a finding adds to the account's score."`
	DryRun        bool           `yaml:"dry_run" doc:"Report without acting."`
}

// CampaignConfig configures the campaign detector.
type CampaignConfig struct {
	Enabled          bool           `yaml:"enabled" doc:"Fingerprint outbound messages (needs novelty.enabled and the milter)."`
	DayMessages      int            `yaml:"day_messages" doc:"A run: at least this many separate messages of one fingerprint in 24 hours …"`
	DayFirstTime     int            `yaml:"day_first_time" doc:"… that went to at least this many first-time recipients."`
	WeekMessages     int            `yaml:"week_messages" doc:"A slow run: at least this many separate messages of one fingerprint in 7 days …"`
	WeekFirstTime    int            `yaml:"week_first_time" doc:"… to at least this many first-time recipients."`
	LureMessages     int            `yaml:"lure_messages" doc:"A phishing run: at least this many separate messages of one fingerprint with the vocabulary of credential phishing (password, quota, verify your account … with a link) in 24 hours …"`
	LureFirstTime    int            `yaml:"lure_first_time" doc:"… to at least this many first-time recipients (colleagues at the local domains count)."`
	AcrossAccounts   int            `yaml:"across_accounts" doc:"This many accounts sending one fingerprint in a day are judged together against the day limits, to first-time outside recipients (campaign-across-accounts; 0: off)."`
	NewLinkFirstTime int            `yaml:"new_link_first_time" doc:"Links to a host the site's outbound mail never carried before (the site's own domains excepted) flag the messages carrying it once they reached this many first-time recipients in its first day (0: off)."`
	MaxPerAccount    int            `yaml:"max_per_account" doc:"Fingerprints remembered per account (least recently sent forgotten first)."`
	MaxSite          int            `yaml:"max_site" doc:"Fingerprints remembered for the whole site, with the accounts that sent them."`
	Verdict          verdict.Action `yaml:"verdict" doc:"Verdict for a message of a run: tag, hold, defer or reject."`
	Score            int            `yaml:"score" doc:"Points a finding adds to the account's score (family campaign; a run scores once an hour)."`
	DryRun           bool           `yaml:"dry_run" doc:"Report without acting."`
}

// OriginConfig configures the origin detector.
type OriginConfig struct {
	Enabled        bool           `yaml:"enabled" doc:"Track origins (needs novelty.enabled for its key and learning period)."`
	SiteNetworks   []string       `yaml:"site_networks" doc:"The site's own networks (CIDR): campus NAT, VPN, webmail proxies. Addresses in them, and private, loopback and link-local ones, are not origins."`
	NewPrefixScore int            `yaml:"new_prefix_score" doc:"Points (identity family, evidence only) for a message from a prefix the account never used, when it used others."`
	SharedAccounts int            `yaml:"shared_accounts" doc:"One address that was new to this many accounts within a day (a phishing kit's server) is a finding on each."`
	SharedScore    int            `yaml:"shared_score" doc:"Points (identity family) of that finding."`
	SharedVerdict  verdict.Action `yaml:"shared_verdict" doc:"Verdict of that finding: allow (evidence), tag or hold."`
	MaxPerAccount  int            `yaml:"max_per_account" doc:"Prefixes remembered per account."`
	MaxSite        int            `yaml:"max_site" doc:"Addresses remembered for the site."`
}

// PhishersConfig configures the known-phisher detector.
type PhishersConfig struct {
	Lists          []string       `yaml:"lists" doc:"Files in the APRL phishing_reply_addresses format (ADDRESS,TYPE,DATE; TYPE letters A-E, all kept). Reloaded when they change."`
	Cleared        []string       `yaml:"cleared" doc:"Files in the APRL phishing_cleared_addresses format (ADDRESS,DATE): an address cleared on or after its listing date is not listed."`
	Blocklist      []string       `yaml:"blocklist" doc:"Site files of phisher addresses and domains, one per line: user@example.org, @example.org (that domain), example.org (and its subdomains)."`
	Allowlist      []string       `yaml:"allowlist" doc:"Site files in the blocklist format naming addresses and domains never treated as phishers, even when a list names them."`
	Reload         Duration       `yaml:"reload" doc:"How often the files are checked for changes."`
	Verdict        verdict.Action `yaml:"verdict" doc:"Verdict for outbound mail to a listed address: tag, hold, defer or reject."`
	Score          int            `yaml:"score" doc:"Points such a message adds to the account's score."`
	InboundVerdict verdict.Action `yaml:"inbound_verdict" doc:"Verdict for inbound mail from a listed address: allow (log only), tag (adds X-Mailbrake-Reasons), hold or reject."`
	DryRun         bool           `yaml:"dry_run" doc:"Report without acting."`
}

// PasswordLeakConfig configures the password-leak detector.
type PasswordLeakConfig struct {
	Enabled           bool           `yaml:"enabled" doc:"Check outbound messages when a directory is configured."`
	Sources           []HashSource   `yaml:"sources" doc:"Where hashes come from, in order: ldap, passwd_file."`
	CacheTTL          Duration       `yaml:"cache_ttl" doc:"How long an account's hash is cached; a changed password is seen after at most this long."`
	MaxScanBytes      int            `yaml:"max_scan_bytes" doc:"Message bytes kept for the scan (the milter keeps this much of each body)."`
	MinLength         int            `yaml:"min_length" doc:"Shortest candidate, in characters."`
	MaxLength         int            `yaml:"max_length" doc:"Longest candidate, in characters."`
	MaxCandidates     int            `yaml:"max_candidates" doc:"Candidates taken from one message."`
	InlineBudget      Duration       `yaml:"inline_budget" doc:"Time per message spent inline on slow schemes (crypt, bcrypt, argon2, PBKDF2), most likely candidates first."`
	MaxSlowCandidates int            `yaml:"max_slow_candidates" doc:"Candidates checked against a slow scheme per message (inline, then in the background pool)."`
	Workers           int            `yaml:"workers" doc:"Background workers for slow schemes."`
	Verdict           verdict.Action `yaml:"verdict" doc:"Verdict for a message with the sender's password: hold, defer or reject."`
	Score             int            `yaml:"score" doc:"Points it adds to the account's score."`
	DryRun            bool           `yaml:"dry_run" doc:"Report without acting."`
}

// DirectoryConfig locates account data.
type DirectoryConfig struct {
	LDAP       LDAPConfig       `yaml:"ldap" doc:"LDAP directory (OpenLDAP, Zimbra's LDAP, 389 DS, Active Directory); empty url: none."`
	PasswdFile PasswdFileConfig `yaml:"passwd_file" doc:"Dovecot passwd-file; empty path: none."`
}

// LDAPConfig configures the LDAP client.
type LDAPConfig struct {
	URL                string   `yaml:"url" doc:"ldap://host:389, ldaps://host:636 or ldapi://."`
	BindDN             string   `yaml:"bind_dn" doc:"DN to bind as; empty: anonymous."`
	BindPasswordFile   string   `yaml:"bind_password_file" doc:"File holding the bind password."`
	BaseDN             string   `yaml:"base_dn" doc:"Search base for accounts."`
	Filter             string   `yaml:"filter" doc:"Search filter; %s is the account (escaped). Zimbra: (&(objectClass=zimbraAccount)(mail=%s))."`
	PasswordAttribute  string   `yaml:"password_attribute" doc:"Attribute holding the password hash."`
	StartTLS           bool     `yaml:"start_tls" doc:"Use StartTLS on ldap:// URLs."`
	CAFile             string   `yaml:"ca_file" doc:"CA certificates (PEM) to verify the server; empty: the system's."`
	InsecureSkipVerify bool     `yaml:"insecure_skip_verify" doc:"Do not verify the server certificate (testing only)."`
	Timeout            Duration `yaml:"timeout" doc:"Per operation."`
	LockAttribute      string   `yaml:"lock_attribute" doc:"Attribute written to lock a login (ppolicy: pwdAccountLockedTime)."`
	LockValue          string   `yaml:"lock_value" doc:"Value that locks (ppolicy: 000001010000Z, locked until an admin unlocks)."`
	UnlockValue        string   `yaml:"unlock_value" doc:"Value that unlocks; empty: the attribute is deleted."`
	PasswordChangedAt  string   `yaml:"password_changed_attribute" doc:"Operational attribute with the time of the last password change (ppolicy: pwdChangedTime)."`
	RecoveryAddress    string   `yaml:"recovery_address_attribute" doc:"Attribute with the user's recovery address, for notify.notify_user (e.g. mailAlternateAddress); empty: none."`
}

// PasswdFileConfig configures a Dovecot passwd-file.
type PasswdFileConfig struct {
	Path   string       `yaml:"path" doc:"The passwd-file (user:{SCHEME}hash:uid:gid:gecos:home:shell:extra)."`
	Scheme PasswdScheme `yaml:"scheme" doc:"Scheme for passwords mailbrake writes (scramble-password): SHA512-CRYPT or BLF-CRYPT."`
}

// ResponseConfig configures incidents and playbook steps.
type ResponseConfig struct {
	DryRun        bool          `yaml:"dry_run" doc:"Record what every step would do without doing it."`
	MinLock       Duration      `yaml:"min_lock" doc:"A locked account stays locked at least this long, even after its password changed (an admin can override, with a reason)."`
	Attempts      int           `yaml:"attempts" doc:"Attempts per step and system before the step is recorded as failed."`
	Backoff       Duration      `yaml:"backoff" doc:"Wait after the first failed attempt; doubled after each."`
	UseLDAP       bool          `yaml:"use_ldap" doc:"Playbooks lock, unlock and scramble through directory.ldap (Password Modify). Leave off for Zimbra's LDAP: use response.zimbra."`
	UsePasswdFile bool          `yaml:"use_passwd_file" doc:"Playbooks lock (the extra field fail=y, which refuses SMTP AUTH through Dovecot SASL too, unlike nologin), unlock and scramble in directory.passwd_file."`
	Zimbra        ZimbraConfig  `yaml:"zimbra" doc:"Zimbra SOAP admin API; empty url: none."`
	Dovecot       DovecotConfig `yaml:"dovecot" doc:"Dovecot doveadm HTTP API (end-sessions: kick, auth cache flush); empty url: none."`
	Exec          ExecConfig    `yaml:"exec" doc:"A site command run for chosen steps, with the incident as JSON on stdin; empty command: none."`
}

// ZimbraConfig configures the Zimbra SOAP admin connector.
type ZimbraConfig struct {
	URL                string   `yaml:"url" doc:"Admin SOAP endpoint, e.g. https://mail.example.edu:7071/service/admin/soap."`
	AdminUser          string   `yaml:"admin_user" doc:"Admin account name."`
	AdminPasswordFile  string   `yaml:"admin_password_file" doc:"File holding the admin password."`
	CAFile             string   `yaml:"ca_file" doc:"CA certificates (PEM) for the admin port; empty: the system's."`
	InsecureSkipVerify bool     `yaml:"insecure_skip_verify" doc:"Do not verify the certificate (testing only)."`
	Timeout            Duration `yaml:"timeout" doc:"Per request."`
}

// DovecotConfig configures the doveadm HTTP API connector.
type DovecotConfig struct {
	URL        string   `yaml:"url" doc:"doveadm HTTP API base, e.g. http://127.0.0.1:8080."`
	APIKeyFile string   `yaml:"api_key_file" doc:"File holding doveadm_api_key."`
	Timeout    Duration `yaml:"timeout" doc:"Per request."`
}

// ExecConfig configures the command connector.
type ExecConfig struct {
	Command []string        `yaml:"command" doc:"Program and arguments (no shell)."`
	Steps   []playbook.Step `yaml:"steps" doc:"Steps the command carries out; it gets {\"step\":…,\"incident\":…} on stdin and fails with a non-zero exit."`
	Timeout Duration        `yaml:"timeout" doc:"Per run."`
}

// NotifyConfig configures notifications.
type NotifyConfig struct {
	SMTP            NotifySMTPConfig    `yaml:"smtp" doc:"Mail submission for notification e-mail; empty addr: no e-mail."`
	HelpDesk        []string            `yaml:"helpdesk" doc:"Help-desk addresses: what happened and what to do with the user."`
	Admins          []string            `yaml:"admins" doc:"Admin addresses: the same with every technical detail."`
	NotifyUser      bool                `yaml:"notify_user" doc:"Also mail the user's recovery address when the account is contained: directory.ldap.recovery_address_attribute, else Zimbra's zimbraPrefPasswordRecoveryAddress; without either, nothing is sent to the user."`
	HelpDeskContact string              `yaml:"helpdesk_contact" doc:"How users reach the help desk (phone, room), quoted in the mail to the user."`
	Webhook         NotifyWebhookConfig `yaml:"webhook" doc:"JSON POST signed with HMAC-SHA256 (X-Mailbrake-Signature); empty url: none."`
	Syslog          NotifySyslogConfig  `yaml:"syslog" doc:"RFC 5424 lines to a syslog server; no network and no addr: none."`
	TemplatesDir    string              `yaml:"templates_dir" doc:"Directory with helpdesk.txt, admin.txt, user.txt (text/template) replacing the built-in mails."`
	PerIncident     int                 `yaml:"per_incident" doc:"At most this many notifications per channel and incident in an hour."`
	PerHour         int                 `yaml:"per_hour" doc:"At most this many notifications per channel in an hour."`
}

// NotifySMTPConfig configures notification mail.
type NotifySMTPConfig struct {
	Addr         string   `yaml:"addr" doc:"host:port of the submission server (e.g. the local Postfix on 127.0.0.1:25)."`
	HelloName    string   `yaml:"hello_name" doc:"EHLO name, also the domain of Message-IDs."`
	From         string   `yaml:"from" doc:"Sender address."`
	StartTLS     StartTLS `yaml:"starttls" doc:"none, opportunistic or required."`
	Username     string   `yaml:"username" doc:"SMTP AUTH user (PLAIN, only over TLS or loopback)."`
	PasswordFile string   `yaml:"password_file" doc:"File holding the SMTP AUTH password."`
	CAFile       string   `yaml:"ca_file" doc:"CA certificates (PEM) for STARTTLS."`
	Timeout      Duration `yaml:"timeout" doc:"Per delivery."`
}

// NotifyWebhookConfig configures the webhook.
type NotifyWebhookConfig struct {
	URL        string   `yaml:"url" doc:"Receiver URL."`
	SecretFile string   `yaml:"secret_file" doc:"File holding the HMAC secret."`
	Timeout    Duration `yaml:"timeout" doc:"Per attempt."`
	Retries    int      `yaml:"retries" doc:"Retries after a 5xx answer or a network error, with backoff."`
}

// NotifySyslogConfig configures syslog.
type NotifySyslogConfig struct {
	Network  SyslogNetwork `yaml:"network" doc:"udp, tcp or unix; empty: udp when addr is set, else no syslog."`
	Addr     string        `yaml:"addr" doc:"host:port, or the socket path for unix."`
	Tag      string        `yaml:"tag" doc:"APP-NAME."`
	Facility string        `yaml:"facility" doc:"Facility name, e.g. auth, daemon, local0."`
}

// PlaybookConfig is one playbook.
type PlaybookConfig struct {
	Name string `yaml:"name" doc:"Unique name. A playbook named as a default replaces that default; another name adds a playbook."`
	// Disabled turns a default off explicitly.
	Disabled    bool            `yaml:"disabled" doc:"With the name of a default playbook and nothing else: that default does not run."`
	Triggers    []string        `yaml:"triggers" doc:"Finding reasons that open an incident with this playbook."`
	Severity    store.Severity  `yaml:"severity" doc:"low, medium, high or critical."`
	Steps       []playbook.Step `yaml:"steps" doc:"Ordered steps."`
	ConfirmFrom playbook.Step   `yaml:"confirm_from" doc:"First step that waits for an admin's confirmation; empty: all run at once."`
}

// HeaderMatch tags a message whose header matches a regular expression.
type HeaderMatch struct {
	Header  string `yaml:"header" doc:"Header name."`
	Matches string `yaml:"matches" doc:"RE2 regular expression."`
}

// AccountsConfig configures automatic account state changes.
type AccountsConfig struct {
	WatchScore    int      `yaml:"watch_score" doc:"An account whose findings' scores add up to this within score_window is put on watch (0: never automatically)."`
	RestrictScore int      `yaml:"restrict_score" doc:"An account whose findings' scores add up to this within score_window is restricted: all its outbound mail is held, and its queued mail put on hold (0: never automatically)."`
	ScoreWindow   Duration `yaml:"score_window" doc:"The window over which finding scores add up (1h or 24h)."`
}

// Rule is one declarative rule: when all conditions hold, it reports a
// finding with Reason and asks for Verdict.
type Rule struct {
	Name      string          `yaml:"name" doc:"Unique rule name."`
	Reason    string          `yaml:"reason,omitempty" doc:"Stable kebab-case reason reported in logs, the API and the audit log; defaults to name."`
	Stage     RuleStage       `yaml:"stage,omitempty" doc:"rcpt (per recipient on the policy path; at the milter's end of message for a message none of whose recipients the policy path checked, where recipient and recipient_domain are empty) or eom (end of message, both paths)."`
	Direction RuleDirection   `yaml:"direction,omitempty" doc:"outbound (default: mail from a named account), inbound (mail from outside, account unauthenticated) or any."`
	When      []Condition     `yaml:"when" doc:"Conditions, all of which must hold."`
	Verdict   *verdict.Action `yaml:"verdict" doc:"allow, tag, hold, defer or reject."`
	Family    verdict.Family  `yaml:"family,omitempty" doc:"The kind of evidence the finding is: volume (how many recipients or messages; the default), scripted, campaign, identity, phish or secret. One message scores the highest finding of each family once, so findings driven by the same recipients are one piece of evidence."`
	Text      string          `yaml:"text,omitempty" doc:"Optional reply text for defer/reject (generic by default)."`
	DryRun    bool            `yaml:"dry_run,omitempty" doc:"Shadow mode for this rule: log and record the finding but do not act on it."`
	Score     int             `yaml:"score,omitempty" doc:"Points this finding adds to the account's score (see accounts); dry-run findings add none."`
}

// Condition compares one fact with a value. Exactly one operator is set.
type Condition struct {
	Fact    string   `yaml:"fact" doc:"A fact name: account, account_source, authenticated, client, client_family, client_address, trusted_client, sender, sender_domain, recipient, recipient_domain, recipient_count, size, stage, path, messages_1h, recipients_1h, messages_24h, recipients_24h; at end of message (stage eom, outbound; 0 while the novelty detector is off) new_recipients, first_time_recipients_1h, first_time_recipients_24h, distinct_recipients_1h, distinct_recipients_24h, recipient_domains, external_recipients, external_share."`
	Eq      *string  `yaml:"eq,omitempty"`
	Ne      *string  `yaml:"ne,omitempty"`
	In      []string `yaml:"in,omitempty"`
	NotIn   []string `yaml:"not_in,omitempty"`
	Gt      *float64 `yaml:"gt,omitempty"`
	Gte     *float64 `yaml:"gte,omitempty"`
	Lt      *float64 `yaml:"lt,omitempty"`
	Lte     *float64 `yaml:"lte,omitempty"`
	Matches string   `yaml:"matches,omitempty" doc:"RE2 regular expression."`
}

// Duration is a time.Duration written as "30s", "5m", "1h".
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalYAML writes the duration in Go syntax.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

func parseDuration(s string) (Duration, error) {
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (use e.g. 30s, 5m, 1h)", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("negative duration %q", s)
	}
	return Duration(v), nil
}

func ptr[T any](v T) *T { return &v }

// Default returns the embedded default configuration: every listener on
// loopback, the embedded SQLite store, and the rules below.
func Default() *Config {
	return &Config{
		DataDir: "./mailbrake-data",
		Log:     LogConfig{Level: LogInfo, Format: LogText, Verdicts: LogNonAllow},
		Policy:  PolicyConfig{Enabled: true, Listen: "127.0.0.1:10041", MaxIdle: Duration(330 * time.Second), DecisionTimeout: Duration(5 * time.Second)},
		Milter:  MilterConfig{Enabled: true, Listen: "127.0.0.1:10042", OnError: MilterTempfail},
		HTTP:    HTTPConfig{Enabled: true, Listen: "127.0.0.1:10043"},
		Identity: IdentityConfig{
			TrustedNetworks: []string{"127.0.0.0/8", "::1/128"},
			AccountHeader:   "X-Authenticated-User",
			RelayedOnPolicy: RelayedMilter,
			// No client writes this header: several disagreeing copies
			// mean a client forged one (a raw MIME upload through SOAP).
			// Hold that message; the score puts the account on watch but
			// one message never restricts it.
			ForgedVerdict: verdict.Hold, ForgedScore: 5, ClientMismatchScore: 0,
		},
		Postfix: PostfixConfig{
			Postsuper:    "postsuper",
			Postqueue:    "postqueue",
			SyncInterval: Duration(30 * time.Second),
			SyncGrace:    Duration(time.Minute),
			// Postfix's FILTER_README, amavis's default forward_method and
			// Zimbra's master.cf all re-inject on port 10025 of loopback.
			ReinjectionListeners: []string{"127.0.0.1:10025", "[::1]:10025"},
		},
		// 16 KiB: enough to judge a spam run from its first screen of text,
		// small enough that a thousand holds stay in a few megabytes.
		Quarantine: QuarantineConfig{PreviewBytes: 16 << 10},
		// 250 ms: far above a loopback or LAN round trip (well under 1 ms),
		// far below Postfix's policy and milter timeouts.
		Cluster:   ClusterConfig{Redis: RedisConfig{Prefix: "mailbrake:", Seeds: []string{}, Timeout: Duration(250 * time.Millisecond)}},
		Retention: RetentionConfig{Previews: Duration(30 * 24 * time.Hour), Holds: Duration(365 * 24 * time.Hour), Audit: Duration(2 * 365 * 24 * time.Hour)},
		Engine:    EngineConfig{OnError: verdict.Allow},
		// Two strong findings in a day restrict an account; one puts it on
		// watch. A single bulk hold may be a legitimate sender (the Zimbra
		// admins see one or two a year), so it alone does not restrict.
		Accounts: AccountsConfig{WatchScore: 5, RestrictScore: 10, ScoreWindow: Duration(24 * time.Hour)},
		// Floors: 100 recipients in an hour and 300 in a day are above what
		// nearly every person sends (the Enron history in ../shared tops
		// out well below), so a quiet account is flagged only beyond them;
		// a factor of 4 over the account's own robust normal leaves room for
		// ordinary busy days. A new client family alone only scores.
		Baseline: BaselineConfig{
			Enabled: true, Days: 28, Factor: 4, FloorHour: 100, FloorDay: 300, MinHistoryDays: 7,
			Verdict: verdict.Hold, Score: 5, NewClientVerdict: verdict.Allow, NewClientScore: 3, NewClientMinRcpts: 10,
		},
		// A reply to phish is how accounts get phished: hold it, and put
		// the account on watch at once (score 5). 30 days covers mail read
		// late from the Junk folder.
		Phish: PhishConfig{
			Enabled:       true,
			Retention:     Duration(30 * 24 * time.Hour),
			SpamFlag:      true,
			SubjectTags:   []string{"[Fraud Alert: Suspected SPAM]"},
			HeaderMatches: []HeaderMatch{},
			Verdict:       verdict.Hold,
			Score:         5,
			TrustTags:     TrustAuto,
		},
		// First-time recipients: the busiest of the 81 real senders in
		// ../shared/data/enron-* reached 89 in an hour and 91 in a day
		// (docs/detection.md); 100 a day stops a slow spray of strangers
		// after about 100 while leaving room above real people. A week of
		// learning keeps a new installation from flagging everybody.
		Novelty: NoveltyConfig{
			Enabled: true, Lookback: Duration(90 * 24 * time.Hour), MaxPerAccount: 5000, KeyFile: "novelty.key",
			LocalDomains: []string{}, FirstTimeHour: 0, FirstTimeDay: 100, Learning: Duration(7 * 24 * time.Hour),
			Verdict: verdict.Hold, Score: 5,
		},
		// A run is the same text to people the account never wrote to, in
		// separate messages: 5 in a day to 10 first-time recipients, or 10
		// in a week to 25; with the vocabulary of credential phishing, 3
		// messages to 3. A one-off announcement is one message and never a
		// run (docs/detection.md).
		Campaign: CampaignConfig{
			Enabled: true, DayMessages: 5, DayFirstTime: 10, WeekMessages: 10, WeekFirstTime: 25, LureMessages: 3, LureFirstTime: 3, NewLinkFirstTime: 20, AcrossAccounts: 3,
			MaxPerAccount: 1024, MaxSite: 50000, Verdict: verdict.Hold, Score: 5,
		},
		// A phishing kit's server submits for every account it phished: an
		// address new to three accounts in a day is evidence on each (score
		// 5, watch); a prefix an account never used is weak evidence (2).
		// Shared NATs of the site belong in site_networks.
		Origin: OriginConfig{Enabled: true, SiteNetworks: []string{}, NewPrefixScore: 2, SharedAccounts: 3, SharedScore: 5, SharedVerdict: verdict.Allow,
			MaxPerAccount: 64, MaxSite: 100000},
		// A reply to a known phisher is how an account gets taken over:
		// hold it and put the account on watch (score 5).
		Phishers: PhishersConfig{
			Lists: []string{}, Cleared: []string{}, Blocklist: []string{}, Allowlist: []string{},
			Reload: Duration(time.Minute), Verdict: verdict.Hold, Score: 5, InboundVerdict: verdict.Tag,
		},
		// Salted digests (Zimbra's {SSHA512}) cost under a microsecond per
		// candidate, so every candidate is checked inline; slow schemes get
		// 50 ms inline and 50 candidates in all.
		PasswordLeak: PasswordLeakConfig{
			Enabled: true, Sources: []HashSource{SourceLDAP, SourcePasswdFile}, CacheTTL: Duration(5 * time.Minute), MaxScanBytes: 512 << 10,
			MinLength: 6, MaxLength: 64, MaxCandidates: 1000, InlineBudget: Duration(50 * time.Millisecond), MaxSlowCandidates: 50, Workers: 2,
			Verdict: verdict.Hold, Score: 10,
		},
		Directory: DirectoryConfig{
			LDAP: LDAPConfig{Filter: "(mail=%s)", PasswordAttribute: "userPassword", Timeout: Duration(10 * time.Second),
				LockAttribute: "pwdAccountLockedTime", LockValue: "000001010000Z", PasswordChangedAt: "pwdChangedTime"},
			PasswdFile: PasswdFileConfig{Scheme: SchemeSHA512Crypt},
		},
		// A lock lasts until the user was reached and changed the
		// password; an hour keeps a quick toggle from undoing it.
		Response: ResponseConfig{
			MinLock: Duration(time.Hour), Attempts: 3, Backoff: Duration(time.Second),
			Zimbra:  ZimbraConfig{Timeout: Duration(15 * time.Second)},
			Dovecot: DovecotConfig{Timeout: Duration(10 * time.Second)},
			Exec:    ExecConfig{Command: []string{}, Steps: []playbook.Step{}, Timeout: Duration(30 * time.Second)},
		},
		// Five notifications per incident and channel an hour keep one
		// incident's steps and retries from flooding the help desk.
		Notify: NotifyConfig{
			SMTP:     NotifySMTPConfig{HelloName: "localhost", StartTLS: StartTLSOpportunistic, Timeout: Duration(30 * time.Second)},
			HelpDesk: []string{}, Admins: []string{},
			Webhook:     NotifyWebhookConfig{Timeout: Duration(10 * time.Second), Retries: 3},
			Syslog:      NotifySyslogConfig{Tag: "mailbrake", Facility: "auth"},
			PerIncident: 5, PerHour: 100,
		},
		Playbooks: DefaultPlaybooks(),
		Rules:     DefaultRules(),
	}
}

// DefaultPlaybooks returns the playbooks shipped by default. A password
// in an outbound message is a certain compromise, contained at once. A
// bulk run through the scripted client (the trap Zimbra admins run by
// hand), or a message an admin marked as spam, stops the account's sending
// at once and the rest waits for an admin. A count of recipients or
// messages above the account's normal opens an incident for review and
// nothing more: a legitimate sender's one big message has it too (the
// account's own score still restricts it when the evidence repeats). A
// run of one text (campaign fingerprints) opens an incident for review
// too: a mail merge looks like one. A reply to a phisher notifies and
// waits.
func DefaultPlaybooks() []PlaybookConfig {
	full := []playbook.Step{playbook.StepRestrictSending, playbook.StepHoldQueuedMail, playbook.StepLockLogin, playbook.StepScramblePassword,
		playbook.StepEndSessions, playbook.StepForcePasswordChange, playbook.StepCheckPersistence, playbook.StepNotify}
	return []PlaybookConfig{
		{Name: "contain-password-leak", Triggers: []string{"password-leak"}, Severity: store.SeverityCritical, Steps: full},
		{Name: "contain-mass-sending", Severity: store.SeverityHigh, Steps: full, ConfirmFrom: playbook.StepLockLogin,
			Triggers: []string{"bulk-from-scripted-client", "marked-spam"}},
		{Name: "review-volume", Severity: store.SeverityMedium, Steps: full, ConfirmFrom: playbook.StepRestrictSending,
			Triggers: []string{"rate-recipients-hour", "rate-messages-hour", "rate-recipients-day",
				"above-baseline-hour", "above-baseline-day", "first-time-recipients-hour", "first-time-recipients-day"}},
		{Name: "review-campaign", Severity: store.SeverityHigh, Steps: full, ConfirmFrom: playbook.StepRestrictSending,
			Triggers: []string{"campaign-run", "phishing-run", "marked-spam-text", "campaign-across-accounts", "new-link-domain", "shared-origin"}},
		{Name: "phish-reply", Severity: store.SeverityHigh, ConfirmFrom: playbook.StepLockLogin,
			Triggers: []string{"reply-to-phisher", "reply-to-suspected-phish"},
			Steps: []playbook.Step{playbook.StepNotify, playbook.StepLockLogin, playbook.StepScramblePassword, playbook.StepEndSessions,
				playbook.StepForcePasswordChange, playbook.StepCheckPersistence}},
	}
}

// DefaultRules returns the rules shipped by default.
func DefaultRules() []Rule {
	return []Rule{
		{
			// The trap Zimbra admins run by hand: spam runs from phished
			// accounts are scripted through the Standard HTML client
			// (zclient) or bare SOAP; real users rarely send to more than
			// 50 envelope recipients from it. 50 is the figure those
			// admins found catches almost every run with one or two
			// legitimate senders caught.
			Name:   "bulk-from-scripted-client",
			Reason: "bulk-from-scripted-client",
			Family: verdict.Scripted,
			Stage:  StageEOM,
			When: []Condition{
				{Fact: "client_family", In: []string{"zimbra-html", "zimbra-bare"}},
				{Fact: "recipient_count", Gt: ptr(50.0)},
			},
			Verdict: ptr(verdict.Hold),
			Score:   5,
		},
		{
			// 500 recipients in an hour is far above what an individual
			// sends (the Enron sent-mail history peaks well below it) and
			// well within one spam run; hold for review rather than
			// refuse, so a legitimate burst is only delayed.
			Name:   "recipients-per-hour",
			Reason: "rate-recipients-hour",
			Stage:  StageEOM,
			When: []Condition{
				{Fact: "account_source", Ne: ptr("unauthenticated")},
				{Fact: "recipients_1h", Gt: ptr(500.0)},
			},
			Verdict: ptr(verdict.Hold),
			Score:   5,
		},
		{
			// 200 messages an hour from one account is a script, not a
			// person; defer at RCPT so the client retries later.
			Name:   "messages-per-hour",
			Reason: "rate-messages-hour",
			Stage:  StageRcpt,
			When: []Condition{
				{Fact: "account_source", Ne: ptr("unauthenticated")},
				{Fact: "messages_1h", Gte: ptr(200.0)},
			},
			Verdict: ptr(verdict.Defer),
		},
		{
			// A day's volume of 2,000 recipients: alert only (dry run)
			// until the site has checked its own heavy senders.
			Name:   "recipients-per-day",
			Reason: "rate-recipients-day",
			Stage:  StageEOM,
			When: []Condition{
				{Fact: "account_source", Ne: ptr("unauthenticated")},
				{Fact: "recipients_24h", Gt: ptr(2000.0)},
			},
			Verdict: ptr(verdict.Hold),
			DryRun:  true,
		},
	}
}

// Notes are what a configuration does that its author may not expect,
// though it is valid: config check prints them and serve logs them.
func Notes(c *Config) []string { return c.notes }

// AddNote adds a note found while provisioning c (daemon.Check): what is
// fine to run but worth the admin's knowing.
func AddNote(c *Config, note string) { c.notes = append(c.notes, note) }

// PlaybookPath is the key path of c.Playbooks[i] for error messages: its
// place in the file, or where it comes from when it is a default.
func PlaybookPath(c *Config, i int) string {
	if i < len(c.playbookPaths) {
		return c.playbookPaths[i]
	}
	return fmt.Sprintf("playbooks[%d]", i)
}

// mergePlaybooks merges the playbooks a configuration lists (site) with
// the defaults: a site playbook named as a default replaces it, a disabled
// one turns it off, others are added after the defaults; a trigger a site
// playbook takes is taken from the default that had it, and a default left
// with no trigger does not run. What changed about the defaults is noted.
func mergePlaybooks(site []PlaybookConfig) (merged []PlaybookConfig, paths, notes []string) {
	byName := map[string]PlaybookConfig{}
	index := map[string]int{}
	taken := map[string]string{} // trigger → the site playbook that takes it
	for i, p := range site {
		byName[p.Name] = p
		index[p.Name] = i
		if !p.Disabled {
			for _, tr := range p.Triggers {
				taken[tr] = p.Name
			}
		}
	}
	defaults := map[string]bool{}
	var disabled, emptied []string
	for _, d := range DefaultPlaybooks() {
		defaults[d.Name] = true
		if sp, ok := byName[d.Name]; ok {
			if sp.Disabled {
				disabled = append(disabled, d.Name)
			} else {
				merged = append(merged, sp)
				paths = append(paths, fmt.Sprintf("playbooks[%d]", index[d.Name]))
			}
			continue
		}
		var kept []string
		for _, tr := range d.Triggers {
			if by, ok := taken[tr]; ok {
				notes = append(notes, fmt.Sprintf("playbooks: %q now handles %s instead of the default %q", by, tr, d.Name))
				continue
			}
			kept = append(kept, tr)
		}
		if len(kept) == 0 {
			emptied = append(emptied, d.Name)
			continue
		}
		d.Triggers = kept
		merged = append(merged, d)
		paths = append(paths, fmt.Sprintf("playbooks (the default %q)", d.Name))
	}
	for i, p := range site {
		if !defaults[p.Name] && !p.Disabled {
			merged = append(merged, p)
			paths = append(paths, fmt.Sprintf("playbooks[%d]", i))
		}
	}
	if len(disabled) > 0 {
		notes = append(notes, "playbooks: default playbooks turned off: "+strings.Join(disabled, ", "))
	}
	if len(emptied) > 0 {
		notes = append(notes, "playbooks: these defaults have no trigger left and do not run: "+strings.Join(emptied, ", "))
	}
	identity := true
	for i, p := range paths {
		if p != fmt.Sprintf("playbooks[%d]", i) {
			identity = false
		}
	}
	if identity {
		paths = nil // PlaybookPath's fallback says the same
	}
	return merged, paths, notes
}
