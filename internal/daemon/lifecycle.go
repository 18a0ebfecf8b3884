package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/auth"
	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/counter"
	"github.com/mailbrake/mailbrake/internal/detect"
	"github.com/mailbrake/mailbrake/internal/enforce"
	"github.com/mailbrake/mailbrake/internal/engine"
	"github.com/mailbrake/mailbrake/internal/novelty"
	"github.com/mailbrake/mailbrake/internal/ops"
	"github.com/mailbrake/mailbrake/internal/quarantine"
	"github.com/mailbrake/mailbrake/internal/statebus"
	"github.com/mailbrake/mailbrake/internal/store"
	"github.com/mailbrake/mailbrake/internal/store/postgres"
	"github.com/mailbrake/mailbrake/internal/store/sqlite"
)

// The daemon's life, in Caddy's shape (caddyserver/caddy caddy.go: Validate
// provisions without starting; a failed start unwinds what started; apps
// stop in reverse):
//
//   - Build provisions and checks everything the configuration describes
//     without listening, connecting or writing: detectors, identity,
//     notify, connectors, playbooks and their triggers, TLS certificates.
//     `mailbrake config check` is Build, so it refuses exactly what serve
//     refuses, with the YAML's own key paths.
//   - Start opens the store and starts the components in order; when one
//     fails, the ones already started are stopped in reverse and the store
//     is closed.
//   - Stop stops in reverse: the periodic loops (queue sync, pruning) end,
//     the listeners stop accepting and drain their connections (within
//     serverDrain), then the queues fed by them drain (password-leak
//     checks still running, holds, account state changes, incident
//     reports, playbook runs), then the cluster channels (node commands,
//     heartbeat, shared states and learning) end, the snapshots are saved
//     and the store is closed. Nothing decided is lost.

// Check builds the daemon for c without starting anything and returns
// every problem with its key path: what `config check` reports and serve
// refuses.
func Check(c *config.Config) config.Errors {
	d := New(c, slog.New(slog.DiscardHandler), "check")
	return d.build()
}

// Build returns a daemon for c, provisioned and checked, not started. The
// error is config.Errors.
func Build(c *config.Config, log *slog.Logger, version string) (*Daemon, error) {
	d := New(c, log, version)
	if errs := d.build(); len(errs) > 0 {
		return nil, errs
	}
	return d, nil
}

// New returns a daemon for c; Run builds and starts it.
func New(cfg *config.Config, log *slog.Logger, version string) *Daemon {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Daemon{cfg: cfg, log: log, version: version, Ready: make(chan struct{})}
}

// build provisions what the configuration describes and checks it,
// without side effects: nothing listens, connects or is written. It may be
// called once.
func (d *Daemon) build() config.Errors {
	if d.built {
		return nil
	}
	cfg := d.cfg
	var errs config.Errors
	add := func(path string, err error) {
		var ce config.Errors
		if errors.As(err, &ce) {
			errs = append(errs, ce...)
			return
		}
		errs = append(errs, config.FieldError{Path: path, Msg: err.Error()})
	}
	if verrs := cfg.Validate(); len(verrs) > 0 {
		return verrs
	}
	if _, ces := engine.Compile(cfg.Rules); len(ces) > 0 {
		errs = append(errs, ces...)
	}

	d.counters = counter.NewMemory()
	d.scores = counter.NewMemory()
	d.metrics = newMetrics()
	d.metrics.reg.MustRegister(newStateGauges(d))
	if cfg.Cluster.Redis.Address != "" {
		c, err := newCluster(d, cfg.Cluster)
		if err != nil {
			add("cluster.redis", err)
		} else {
			d.cluster = c
			d.metrics.reg.MustRegister(c.degraded)
		}
	}
	if pc := cfg.Cluster.Postgres; pc.URL != "" {
		o, err := postgresOptions(pc, d.log)
		if err != nil {
			add("cluster.postgres", err)
		} else {
			d.pgOpts = &o
		}
	}
	d.preview = cfg.Quarantine.PreviewBytes
	d.escalations = make(chan escalation, 1024)

	// Detectors. The novelty key is read when it exists; a missing one is
	// created at Start (a random key stands in for the check).
	dopts := detect.Options{Logger: d.log}
	if cfg.Novelty.Enabled {
		key, err := readKey(d.noveltyKeyPath())
		switch {
		case err != nil:
			add("novelty.key_file", err)
		case key != nil:
			dopts.NoveltyKey = key
		default:
			d.createNoveltyKey = true
		}
	}
	dets, err := detect.Build(cfg, dopts)
	if err != nil {
		add("", err)
	} else {
		d.dets = dets
	}

	// The engine's clock: the wall time at start plus the monotonic time
	// since, so that a wall clock stepped back (or forward) during a run
	// does not bend the counters' and scores' windows.
	started := time.Now()
	d.translate.Now = func() time.Time { return started.Add(time.Since(started)).Round(0) }

	// Identity.
	if d.translate.Identity, err = engine.NewIdentity(cfg.Identity.TrustedNetworks, cfg.Identity.AccountHeader); err != nil {
		add("identity.trusted_networks", err)
	} else {
		d.translate.Identity.PolicySender = cfg.Identity.RelayedOnPolicy == config.RelayedSender
	}
	for i, l := range cfg.Postfix.ReinjectionListeners {
		ap, err := netip.ParseAddrPort(l)
		if err != nil {
			add(fmt.Sprintf("postfix.reinjection_listeners[%d]", i), err)
			continue
		}
		d.translate.Reinjection = append(d.translate.Reinjection, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
	}

	// Password-leak sources, notify, connectors and playbooks.
	if err := d.buildPasswordLeak(); err != nil {
		add("password_leak", err)
	}
	if err := d.buildResponse(); err != nil {
		add("", err)
	}

	// Listeners' files and groups.
	if cfg.HTTP.Enabled && (cfg.HTTP.TLSCert != "" || cfg.HTTP.TLSKey != "") {
		if cfg.HTTP.TLSCert == "" || cfg.HTTP.TLSKey == "" {
			add("http.tls_cert", errors.New("tls_cert and tls_key go together"))
		} else if _, err := tls.LoadX509KeyPair(cfg.HTTP.TLSCert, cfg.HTTP.TLSKey); err != nil {
			add("http.tls_cert", err)
		}
	}
	if g := cfg.Admin.Group; g != "" {
		if _, err := user.LookupGroup(g); err != nil {
			add("admin.group", err)
		}
		// The data directory is mailbrake's alone (0700): a socket in it
		// is out of the group's reach whatever its own mode.
		sock := cfg.Admin.Socket
		if sock == "" {
			sock = filepath.Join(cfg.DataDir, "admin.sock")
		}
		if inDir(sock, cfg.DataDir) {
			add("admin.socket", fmt.Errorf("with admin.group the socket must be outside data_dir (%s), which mailbrake keeps mode 0700 so the group cannot reach it; "+
				"set admin.socket to a path such as /run/mailbrake/admin.sock (mailbrake creates the directory 0750 with the group)", cfg.DataDir))
		}
	}
	d.built = len(errs) == 0
	return errs
}

func (d *Daemon) noveltyKeyPath() string {
	kf := d.cfg.Novelty.KeyFile
	if !filepath.IsAbs(kf) {
		kf = filepath.Join(d.cfg.DataDir, kf)
	}
	return kf
}

// Run builds and starts the daemon, serves until ctx is cancelled or a
// server fails, then stops it.
func (d *Daemon) Run(ctx context.Context) error {
	if errs := d.build(); len(errs) > 0 {
		return errs
	}
	if err := d.Start(ctx); err != nil {
		return err
	}
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-d.errc:
		d.log.Error("a server failed; shutting down", "err", runErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Stop(sctx); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

// holdWriteDelay bounds how long a hold waits to be recorded: short
// enough that the reviewer sees it at once, long enough to write a burst in
// one transaction (each commit rewrites the holds table's index pages, so
// under a hold-heavy load 100 ms gave 15 % more requests/s than 20 ms;
// docs/performance.md). holdWriteBatch caps one transaction.
const (
	holdWriteDelay = 100 * time.Millisecond
	holdWriteBatch = 1024
)

// playbookStopGrace is how long a stop lets running playbooks finish
// before cancelling them, and then how long it waits for them to end.
const playbookStopGrace = 10 * time.Second

// essential gives work that must not be lost at a stop (holds and
// findings still pending, counter snapshots) time of its own even when the
// stop's deadline has passed: a slow playbook must not cost them.
func essential(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
}

// stage is a started part of the daemon; stop undoes its start.
type stage struct {
	name string
	stop func(ctx context.Context) error
}

// Start opens the store and starts every component in order. On a failure
// it stops what it started, in reverse, closes the store and returns the
// error: a failed start leaves nothing running.
func (d *Daemon) Start(ctx context.Context) (err error) {
	if !d.built {
		return errors.New("daemon: Start before a successful build")
	}
	cfg := d.cfg
	d.errc = make(chan error, 8)
	d.loopCtx, d.loopCancel = context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		if err != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			d.unwind(sctx)
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("creating data directory: %w", err)
	}
	local, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, "mailbrake.db"), d.log)
	if err != nil {
		return fmt.Errorf("opening store: %w", err)
	}
	d.snaps = local
	d.push("store", func(context.Context) error { return local.Close() })
	var st recordStore = local
	if d.pgOpts != nil {
		// The records are the cluster's. Migrated on open, by one node at
		// a time; a node refuses a schema newer than it knows.
		pg, err := postgres.New(*d.pgOpts)
		if err != nil {
			return fmt.Errorf("cluster.postgres: %w", err)
		}
		st = pg
		d.push("postgres", func(context.Context) error { return pg.Close() })
		mctx, cancel := context.WithTimeout(ctx, pgStartWait)
		err = pg.Migrate(mctx)
		cancel()
		switch {
		case err == nil:
			d.cluster.degraded.WithLabelValues("records").Set(0)
			d.log.Info("cluster: records shared in PostgreSQL", "node", d.cluster.node, "schema", postgres.SchemaVersion())
			if err := d.carryRecords(ctx, local, pg); err != nil {
				return fmt.Errorf("cluster.postgres: bringing this node's own records: %w", err)
			}
		case postgres.Unreachable(err) && ctx.Err() == nil:
			// An outage, not a refusal: the node decides mail as it
			// does during one (holds spooled, admin read-only) and
			// catches up when PostgreSQL answers (catchUpRecords).
			d.pgLate = &lateRecords{pg: pg, local: local, startErr: err, ready: make(chan struct{})}
		default:
			return fmt.Errorf("cluster.postgres: %w", err)
		}
	}
	d.store = st
	if d.createNoveltyKey {
		// A new installation: create the key and build the detectors
		// with it (Build checked them with a stand-in).
		key, err := loadOrCreateKey(d.noveltyKeyPath())
		if err != nil {
			return fmt.Errorf("novelty.key_file: %w", err)
		}
		if d.dets, err = detect.Build(cfg, detect.Options{Logger: d.log, NoveltyKey: key}); err != nil {
			return err
		}
	}
	dets := d.dets
	d.snapshotters = nil
	if d.cluster == nil { // shared counts live in Redis
		d.snapshotters = []snapshotter{
			{"", d.counters.Dirty, d.counters.Restore, d.counters.DirtyParts, d.counters.DirtyPart},
			{"score\x00", d.scores.Dirty, d.scores.Restore, d.scores.DirtyParts, d.scores.DirtyPart},
		}
	} else {
		// Redis not answering at start is an outage like any other: the
		// node counts in its own memory until it answers (counter.Failover).
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := d.cluster.client.Ping(pctx).Err()
		cancel()
		if err != nil {
			d.log.Warn("cluster: Redis does not answer at start; counting in this process until it does", "node", d.cluster.node, "redis", cfg.Cluster.Redis.Address, "err", err)
		} else {
			d.log.Info("cluster: counts and scores shared", "node", d.cluster.node, "redis", cfg.Cluster.Redis.Address, "prefix", cfg.Cluster.Redis.Prefix)
		}
		// What this node counted during a Redis outage and had not added
		// when it last stopped: added when Redis answers.
		d.cluster.spoolDir = filepath.Join(cfg.DataDir, "spool")
		d.cluster.loadBacklogs()
		d.push("redis", func(context.Context) error { return d.cluster.close() })
		if d.dets.Novelty != nil {
			if err := d.cluster.shareNovelty(ctx, d.dets.Novelty, cfg.Cluster.Redis.Prefix, cfg.Engine.ForgetIdleAfter.D(), d.log); err != nil {
				return err
			}
		}
		d.cluster.shareLearning(d.dets, cfg.Cluster.Redis.Prefix, d.log)
		d.snapshotters = append(d.snapshotters, d.cluster.learnedSnapshotter())
	}
	for _, sn := range dets.Snapshotters() {
		d.snapshotters = append(d.snapshotters, snapshotter{sn.Prefix, sn.Dirty, sn.Restore, sn.Parts, sn.Part})
	}
	if ph := dets.Phishers; ph != nil {
		listed, block, allow := ph.Len()
		d.log.Info("phisher lists loaded", "listed", listed, "blocklist_rules", block, "allowlist_rules", allow)
	}
	// Restored in the background: the listeners open at once and decide
	// with what is loaded so far (a million accounts take seconds to
	// read); what accounts learn meanwhile is merged with what is
	// restored. Nothing is saved before the restore ends, so a snapshot
	// not yet read is never overwritten by a partial one.
	d.restored = make(chan struct{})
	go d.restoreInBackground(context.WithoutCancel(ctx))
	// Saved before the store closes (stages stop in reverse), once the
	// restore has ended.
	d.push("snapshots", func(ctx context.Context) error {
		<-d.restored
		ctx, cancel := essential(ctx)
		defer cancel()
		d.saveSnapshots(ctx)
		return nil
	})
	if d.ldap != nil {
		d.push("ldap", func(context.Context) error { d.ldap.Close(); return nil })
	}

	var states *ops.States
	var trusts *ops.Trusts
	if d.pgLate != nil {
		if states, err = d.lateStates(ctx); err != nil {
			return err
		}
		trusts = &ops.Trusts{} // read when PostgreSQL answers: meanwhile more is held, not less
	} else {
		if states, err = ops.NewStates(ctx, st); err != nil {
			return fmt.Errorf("loading account states: %w", err)
		}
		if trusts, err = ops.NewTrusts(ctx, st); err != nil {
			return fmt.Errorf("loading trust entries: %w", err)
		}
		if d.cluster != nil {
			// Shared again (a later record in Redis stays): a change this
			// node's last run made while Redis did not answer, still
			// pending when it stopped, reaches the other nodes now; and
			// with cluster.key_file, what Redis holds from before the key
			// was set is unsigned, and the nodes with the key ignore it.
			as, err := listStates(ctx, st)
			if err != nil {
				return fmt.Errorf("loading account states: %w", err)
			}
			d.cluster.states.Reshare(as)
		}
	}
	volume := &ops.Volume{}
	d.auth = auth.New(st, auth.Options{Log: d.log})
	detectors := append(dets.All(), volumeCounter{volume})
	if d.pwleakOpts != nil {
		d.pwleak = d.newPasswordLeak()
		detectors = append(detectors, d.pwleak)
	}
	var counts, scores store.Counters = d.counters, d.scores
	if d.cluster != nil {
		counts, scores = d.cluster.counts, d.cluster.scores
	}
	d.engine, err = engine.New(engine.Options{Rules: cfg.Rules, Counters: counts, OnError: cfg.Engine.OnError, Logger: d.log, Detectors: detectors,
		States: states, Scores: scores, WatchScore: int64(cfg.Accounts.WatchScore), RestrictScore: int64(cfg.Accounts.RestrictScore),
		ScoreWindow: cfg.Accounts.ScoreWindow.D(), Shadow: cfg.Engine.Shadow, Trust: trusts})
	if err != nil {
		return fmt.Errorf("compiling rules: %w", err)
	}

	postconf, postcat := cfg.Postfix.Postconf, cfg.Postfix.Postcat
	if postconf == "" {
		postconf = quarantine.Beside(cfg.Postfix.Postsuper, "postconf")
	}
	if postcat == "" {
		postcat = quarantine.Beside(cfg.Postfix.Postsuper, "postcat")
	}
	pf := &quarantine.Postfix{ConfigDir: cfg.Postfix.ConfigDir, Postsuper: cfg.Postfix.Postsuper, Postqueue: cfg.Postfix.Postqueue, Postconf: postconf, Postcat: postcat}
	// Each tool resolved now: a missing one is said at start and in
	// /readyz, not found out when an admin releases a message.
	d.missingTools = quarantine.MissingTools([]quarantine.Tool{{Key: "postfix.postsuper", Command: cfg.Postfix.Postsuper},
		{Key: "postfix.postqueue", Command: cfg.Postfix.Postqueue}, {Key: "postfix.postconf", Command: postconf}, {Key: "postfix.postcat", Command: postcat}})
	for _, m := range d.missingTools {
		d.log.Warn("a Postfix tool is missing: holds cannot be released, deleted or reconciled until it is there", "detail", m)
	}
	qs := &quarantine.Service{Store: st, Queue: pf, Log: d.log, MaxQueueLifetime: quarantine.MaxQueueLifetime(ctx, pf), Grace: cfg.Postfix.SyncGrace.D(),
		AccountHeader: cfg.Identity.AccountHeader}
	if d.cluster != nil {
		qs.Node = d.cluster.node
		if cmds, ok := st.(store.Commands); ok && d.pgOpts != nil {
			qs.SharedStore, qs.Commands, qs.NodeDownAfter = true, cmds, ops.NodeDownAfter
		}
	}
	d.ops = &ops.Service{Quarantine: qs, Store: st, Audit: st, Accounts: st, Counters: counts, States: states, Log: d.log,
		TrustStore: st, Trusts: trusts, Volume: volume, Verdicts: &ops.Verdicts{}, ConfigText: d.configView,
		Users: st, Tokens: d.auth, Sessions: d.auth, Events: opsEvents{d.metrics}, Released: d.expectReinjection, Recovered: d.heldFromQueue, MarkedSpam: d.markedSpam, Reviewed: d.reviewed,
		IncidentOpened: d.recoveryOpened}
	if d.cluster != nil {
		d.ops.Shared = d.cluster.states
		d.ops.Node = d.cluster.node
	} else {
		d.ops.Node, _ = os.Hostname()
	}
	// Restrictions the last run set while the records store did not
	// answer: in force again, shared again, written when it answers.
	d.ops.StateSpool = filepath.Join(cfg.DataDir, "spool", "states.json")
	if as := d.ops.LoadPendingStates(); len(as) > 0 && d.cluster != nil {
		d.cluster.states.Reshare(as)
	}
	// Status's read-only flag and the words of an admin request the store
	// could not serve (the web UI's banner).
	d.ops.Records = &ops.Records{Kind: api.RecordsSQLite, Probe: st.WriteProbe}
	if d.pgOpts != nil {
		d.ops.Records.Kind = api.RecordsPostgres
	}
	d.startChannels()
	d.ops.Response = d.startResponse(st)
	// Playbooks run in the background with a context of their own; the
	// stage waits for them after the incident queue (which starts runs)
	// has drained, and cancels them only when Stop's deadline passes.
	runCtx, runCancel := context.WithCancel(context.WithoutCancel(ctx))
	d.ops.RunContext = runCtx
	d.push("playbook runs", func(ctx context.Context) error {
		defer runCancel()
		// The help desk's mails of incidents resolved or dismissed during
		// the drain go out first (each bounded to a minute).
		sent := make(chan struct{})
		go func() { d.helpdesk.Wait(); close(sent) }()
		select {
		case <-sent:
		case <-ctx.Done():
			d.log.Warn("stopping before the help desk was told of every incident resolved or dismissed")
		}
		wctx, cancel := context.WithTimeout(ctx, playbookStopGrace)
		defer cancel()
		if err := d.ops.WaitPlaybooks(wctx); err == nil {
			return nil
		}
		// Cut short: a cancelled run ends at its step and records
		// nothing more; the next start resumes it (ResumePlaybooks).
		// Wait for that so no run writes to a closed store.
		runCancel()
		ectx, ecancel := context.WithTimeout(context.WithoutCancel(ctx), playbookStopGrace)
		defer ecancel()
		if err := d.ops.WaitPlaybooks(ectx); err != nil {
			return fmt.Errorf("playbook runs did not end when cancelled: %w", err)
		}
		d.log.Warn("playbook runs cut short by the stop; they resume at the next start")
		return nil
	})
	// Holds are written off the request path, within holdWriteDelay. A
	// store that does not answer (PostgreSQL down, a full disk) has them
	// kept in memory and in the spool until it does (Postfix holds the
	// messages); the spool's holds of a process killed meanwhile are
	// written from the start, and the queue sync leaves their messages to
	// the writer.
	d.holds = ops.NewHoldWriter(d.ops, ops.HoldWriterOptions{MaxDelay: holdWriteDelay, MaxBatch: holdWriteBatch,
		Probe: st.WriteProbe, SpoolDir: filepath.Join(cfg.DataDir, "spool", "holds"), Loaded: d.heldFromSpool})
	qs.Unwritten = d.holds.Unwritten
	d.enforcer = &enforce.Enforcer{Log: d.log, Holds: d.holds, Metrics: enforceMetrics{d.metrics}, Verdicts: d.ops.Verdicts,
		Escalate: d.queueEscalation, Report: d.queueFindings, ScoreWindow: func() time.Duration { return d.current().Accounts.ScoreWindow.D() }, Incidents: true,
		LogAllowed: cfg.Log.Verdicts == config.LogAll}
	d.ops.Score = func(ctx context.Context, account string, at time.Time) (*api.AccountScore, bool) {
		b, err := d.engine.Scores(ctx, account, at)
		if err != nil {
			return nil, false
		}
		ac := d.current().Accounts
		sc := &api.AccountScore{Total: b.Total, Messages: b.Messages, Window: strings.TrimSuffix(strings.TrimSuffix(ac.ScoreWindow.String(), "0s"), "0m"),
			WatchScore: int64(ac.WatchScore), RestrictScore: int64(ac.RestrictScore), Families: map[string]int64{}}
		for f, v := range b.Families {
			sc.Families[string(f)] = v
		}
		return sc, true
	}
	if dets.Baseline != nil {
		d.ops.Baseline = func(a string, at time.Time) (*api.AccountBaseline, bool) {
			n, ok := dets.Baseline.Normal(a, at)
			if !ok {
				return nil, false
			}
			return &api.AccountBaseline{HistoryDays: n.HistoryDays, DayRecipientsMedian: n.DayRcpts, PeakHourRecipientsP90: n.PeakHourRcpts,
				TodayRecipients: n.TodayRcpts, HourRecipients: n.HourRcpts, ClientFamilies: n.Families}, true
		}
	}
	if dets.Novelty != nil {
		d.ops.Novelty = func(a string, at time.Time) (*api.AccountNovelty, bool) {
			var st novelty.Stats
			if sh := dets.Novelty.Shared; sh != nil {
				var ok bool
				if st, ok = sh.Peek(context.Background(), a, at); !ok {
					return nil, false
				}
			} else {
				st = dets.Novelty.Tracker.Peek(a, at)
			}
			if st.Known == 0 {
				return nil, false
			}
			return &api.AccountNovelty{FirstTime1h: st.FirstTime1h, FirstTime24h: st.FirstTime24h, Distinct1h: st.Distinct1h, Distinct24h: st.Distinct24h,
				Known: st.Known, Tracked: st.Tracked.Round(time.Minute).String()}, true
		}
	}

	// The queues the servers feed: they drain after the servers stopped.
	d.startQueues()
	// Holds still pending are written before the incident queue drains
	// (their findings go there).
	d.push("hold writer", func(ctx context.Context) error {
		ctx, cancel := essential(ctx)
		defer cancel()
		return d.holds.Close(ctx)
	})
	if d.pwleak != nil {
		// Stopped after the listeners, before the incident queue drains:
		// a late match still reports its incident.
		d.push("password-leak workers", func(context.Context) error { d.pwleak.Close(); return nil })
	}

	status := api.Status{Version: d.version, StartedAt: time.Now().UTC(), DataDir: cfg.DataDir, PID: os.Getpid(), Node: d.ops.Node}
	// The two protocol servers: listen, serve, say where.
	listenProto := func(name, addr string, serve func(net.Listener) error, shutdown func(context.Context) error) (net.Addr, error) {
		ln, err := listen(addr)
		if err != nil {
			return nil, fmt.Errorf("%s listener: %w", name, err)
		}
		ln = newLimitListener(ln, serverMaxConns, d.metrics.connsOpen.WithLabelValues(name), d.metrics.connsWaited.WithLabelValues(name))
		d.serve(name+" server", ln, serve, shutdown)
		d.log.Info(name+" server listening", "addr", ln.Addr().String())
		return ln.Addr(), nil
	}
	if cfg.Policy.Enabled {
		srv := d.policyServer()
		if d.Policy, err = listenProto("policy", cfg.Policy.Listen, srv.Serve, srv.Shutdown); err != nil {
			return err
		}
		status.Policy = d.Policy.String()
	}
	if cfg.Milter.Enabled {
		srv := d.milterServer()
		if d.Milter, err = listenProto("milter", cfg.Milter.Listen, srv.Serve, srv.Shutdown); err != nil {
			return err
		}
		status.Milter = d.Milter.String()
	}
	if cfg.HTTP.Enabled {
		ln, err := net.Listen("tcp", cfg.HTTP.Listen)
		if err != nil {
			return fmt.Errorf("http listener: %w", err)
		}
		d.HTTP = ln.Addr()
		status.HTTP = ln.Addr().String()
		useTLS := cfg.HTTP.TLSCert != ""
		handler, err := d.httpHandler(useTLS)
		if err != nil {
			ln.Close()
			return fmt.Errorf("web UI: %w", err)
		}
		// Timeouts on the whole request and reply, and a connection limit:
		// slow unauthenticated clients cannot hold descriptors for long.
		ln = newLimitListener(ln, httpMaxConns, d.metrics.connsOpen.WithLabelValues("http"), d.metrics.connsWaited.WithLabelValues("http"))
		hs := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 2 * time.Minute,
			IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(d.log.With("server", "http").Handler(), slog.LevelWarn)}
		serve := hs.Serve
		if useTLS {
			serve = func(l net.Listener) error { return hs.ServeTLS(l, cfg.HTTP.TLSCert, cfg.HTTP.TLSKey) }
		}
		d.serve("http server", ln, serve, hs.Shutdown)
		if !useTLS && !loopbackOnly(ln.Addr()) {
			d.log.Warn("the web UI and API listen on a non-loopback address without TLS: passwords, session cookies and API tokens cross the network in clear; set http.tls_cert and http.tls_key", "addr", ln.Addr().String())
		}
		d.log.Info("http listening", "addr", ln.Addr().String(), "tls", useTLS, "paths", "/ (web UI) /api/v1/ /healthz /readyz /metrics")
	}

	// Admin socket for the CLI.
	d.Socket = cfg.Admin.Socket
	if d.Socket == "" {
		d.Socket = filepath.Join(cfg.DataDir, "admin.sock")
	}
	d.ops.Status0 = status
	aln, err := listenAdmin(d.Socket, cfg.Admin.Group)
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	socket := d.Socket
	as := &http.Server{Handler: adminAuth(api.Handler(d.ops, d.log)), ReadHeaderTimeout: 10 * time.Second, ConnContext: peerContext}
	d.serve("admin server", aln, as.Serve, func(ctx context.Context) error {
		err := as.Shutdown(ctx)
		os.Remove(socket)
		return err
	})
	d.log.Info("admin socket listening", "path", d.Socket)

	d.startLoops()
	if d.pgLate == nil {
		d.resumePlaybooks(ctx)
	}
	close(d.Ready)
	d.log.Info("mailbrake running", "version", d.version, "data_dir", cfg.DataDir, "rules", len(cfg.Rules))
	for _, n := range config.Notes(cfg) {
		d.log.Warn("configuration note", "note", n)
	}
	return nil
}

// push records a started stage.
func (d *Daemon) push(name string, stop func(context.Context) error) {
	d.stages = append(d.stages, stage{name, stop})
}

// serve runs a server on ln and records its shutdown as a stage. A
// server that fails while running is reported on d.errc.
func (d *Daemon) serve(name string, ln net.Listener, serve func(net.Listener) error, shutdown func(context.Context) error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := serve(ln); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, http.ErrServerClosed) {
			select {
			case d.errc <- fmt.Errorf("%s: %w", name, err):
			default:
			}
		}
	}()
	d.push(name, func(ctx context.Context) error {
		// Every server drains by one deadline, serverDrain after the stop
		// began: an idle SMTP session holding a milter connection must
		// not use up the time the queues behind it need.
		if !d.drainBy.IsZero() {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, d.drainBy)
			defer cancel()
		}
		err := shutdown(ctx)
		<-done
		return err
	})
}

// serverDrain bounds how long the servers, together, wait for their
// connections at a stop; what they decided is then recorded with the
// rest of the stop's time (and essential's).
const serverDrain = 15 * time.Second

// startQueues starts the workers of the queues the servers feed. Their
// stage closes the queues and waits until every queued item is handled, so
// it must stop after the servers (stages stop in reverse).
func (d *Daemon) startQueues() {
	// The workers' own context outlives the loops': a playbook started
	// while draining runs to its end unless Stop's deadline passes.
	qctx, qcancel := context.WithCancel(context.WithoutCancel(d.loopCtx))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.escalationLoop(qctx)
	}()
	d.spoolMu.Lock()
	d.reports = ops.NewReporter(d.ops, reportGather, func(error) { d.metrics.storeErrors.WithLabelValues("incident").Inc() }, filepath.Join(d.cfg.DataDir, "spool", "findings.json"))
	for _, r := range d.spoolReports {
		d.queueFindings(r.account, r.fs)
	}
	d.spoolReports = nil
	d.spoolMu.Unlock()
	d.push("account and incident queues", func(ctx context.Context) error {
		close(d.escalations)
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		defer qcancel()
		// Account state changes are essential: the rest of the stop's
		// time, and at least essential's even when slow connections used
		// it up (what is still queued then is restricted without the
		// store and kept in the state spool).
		ectx, ecancel := essential(ctx)
		if dl, ok := ctx.Deadline(); ok {
			if edl, _ := ectx.Deadline(); dl.After(edl) {
				ecancel()
				ectx, ecancel = context.WithDeadline(context.WithoutCancel(ctx), dl)
			}
		}
		defer ecancel()
		var err error
		select {
		case <-done:
		case <-ectx.Done():
			qcancel()
			<-done
			err = fmt.Errorf("draining the account state queue: %w", ectx.Err())
		}
		rctx, cancel := essential(ctx)
		defer cancel()
		return errors.Join(err, d.reports.Close(rctx))
	})
}

// startChannels starts what ties this node to the others: serving the
// node commands other nodes send this node (release, delete, hold
// queued), its heartbeat, and the account-state and learned-event buses.
// Started before the servers, they stop after the servers, the queues and
// the playbook runs: a node draining still answers commands and shows as
// up, and what is learned or restricted during the drain reaches the
// other nodes.
func (d *Daemon) startChannels() {
	if d.cluster == nil && !d.ops.Quarantine.SharedStore {
		return
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(d.loopCtx))
	var wg sync.WaitGroup
	loop := func(f func()) { wg.Go(f) }
	if qs := d.ops.Quarantine; qs.SharedStore {
		// Releases and deletes other nodes ask of this node's holds: woken
		// by PostgreSQL's notification, and every few seconds in case one
		// was missed (a reconnection).
		wake := make(chan struct{}, 1)
		poke := func() {
			select {
			case wake <- struct{}{}:
			default:
			}
		}
		loop(func() {
			if d.recordsReady(ctx) {
				d.ops.ServeNodeCommands(ctx, wake)
			}
		})
		loop(func() {
			for ctx.Err() == nil {
				if !d.recordsReady(ctx) {
					return
				}
				err := qs.Commands.ListenCommands(ctx, qs.Node, poke)
				if ctx.Err() != nil {
					return
				}
				d.log.Warn("cluster: listening for node commands failed; retrying", "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(2 * time.Second):
				}
			}
		})
		loop(func() {
			if !d.recordsReady(ctx) {
				return
			}
			beat := func(time.Time) {
				poke()
				if err := qs.Beat(ctx, d.version); err != nil && ctx.Err() == nil {
					d.log.Warn("cluster: recording this node's heartbeat failed", "err", err)
				}
			}
			beat(time.Now())
			every(ctx, ops.NodeBeat, beat)
		})
	}
	if d.cluster != nil {
		// Account states set on other nodes, applied here (and this
		// node's changes written to Redis when it was not answering).
		loop(func() {
			d.cluster.states.Run(ctx, func(ctx context.Context, c statebus.Change) { d.ops.ApplySharedState(ctx, c.Account, c.Node) })
		})
		// What the other nodes' detectors learned, from where this node
		// stopped reading: after the restore, which reads the position.
		loop(func() {
			select {
			case <-d.restored:
			case <-ctx.Done():
				return
			}
			d.cluster.learn.Run(ctx, d.cluster.learnFrom)
		})
	}
	d.push("cluster channels", func(context.Context) error {
		cancel()
		wg.Wait()
		return nil
	})
}

// startLoops starts the periodic background loops (queue sync, snapshots,
// pruning, probes); they end first at a stop, before the servers drain:
// nothing the servers decide waits for them.
func (d *Daemon) startLoops() {
	cfg, ctx := d.cfg, d.loopCtx
	var wg sync.WaitGroup
	loop := func(f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f()
		}()
	}
	loop(func() { d.ops.SyncPeriodically(ctx, cfg.Postfix.SyncInterval.D()) })
	loop(func() { d.snapshotLoop(ctx) })
	if d.pgLate != nil {
		loop(func() { d.catchUpRecords(ctx) })
	}
	if ph := d.dets.Phishers; ph != nil {
		loop(func() { ph.Run(ctx, cfg.Phishers.Reload.D()) })
	}
	// The connectors' systems are probed at start and every minute, so
	// that /readyz says Zimbra is down before a playbook needs it.
	if conns := d.response.conns; len(conns) > 0 {
		loop(func() {
			d.connHealth.probeAll(ctx, conns)
			every(ctx, connProbeEvery, func(time.Time) { d.connHealth.probeAll(ctx, conns) })
		})
	}
	// Records are kept for retention.* and pruned hourly, in short
	// transactions beside the request path's writes.
	loop(func() {
		prune := func(now time.Time) {
			before := func(d config.Duration) time.Time {
				if d.D() <= 0 {
					return time.Time{}
				}
				return now.Add(-d.D())
			}
			r := cfg.Retention
			n, err := d.store.Prune(ctx, store.Prune{Previews: before(r.Previews), Holds: before(r.Holds), Audit: before(r.Audit)})
			if err != nil {
				if ctx.Err() == nil {
					d.metrics.storeErrors.WithLabelValues("prune").Inc()
					d.log.Warn("pruning old records failed", "err", err)
				}
				return
			}
			if n != (store.Pruned{}) {
				d.log.Info("old records pruned", "previews_cleared", n.Previews, "holds_deleted", n.Holds, "audit_deleted", n.Audit)
			}
		}
		// Web sessions past their idle time or maximal age (refused
		// already; every node prunes the records it uses).
		pruneSessions := func(time.Time) {
			n, err := d.auth.PruneSessions(ctx)
			if err != nil {
				if ctx.Err() == nil {
					d.metrics.storeErrors.WithLabelValues("prune").Inc()
					d.log.Warn("pruning expired web sessions failed", "err", err)
				}
				return
			}
			if n > 0 {
				d.log.Info("expired web sessions pruned", "sessions", n)
			}
		}
		prune(time.Now())
		pruneSessions(time.Now())
		every(ctx, time.Hour, func(now time.Time) { prune(now); pruneSessions(now) })
	})
	// Accounts that stopped sending are forgotten hourly, in memory and
	// (at the next snapshot) in the store: memory follows the accounts
	// that send, not every account that ever did.
	loop(func() {
		every(ctx, time.Hour, func(now time.Time) {
			select {
			case <-d.restored:
			default:
				return // restoring: an account may be idle only because its state is not read yet
			}
			kept := d.dets.Forget(now, cfg.Engine.ForgetIdleAfter.D())
			d.log.Debug("idle accounts forgotten", "kept", kept)
		})
	})
	d.push("background loops", func(context.Context) error {
		d.loopCancel()
		wg.Wait()
		return nil
	})
}

// Stop stops every started stage in reverse order: the periodic loops,
// then the servers (they stop accepting and drain their connections, all
// within serverDrain), the password-leak workers, the hold writer, the
// account and incident queues (drained), the playbook runs, the cluster
// channels, the snapshots and the store. It returns the stages' errors
// joined.
func (d *Daemon) Stop(ctx context.Context) error {
	err := d.unwind(ctx)
	d.log.Info("mailbrake stopped")
	return err
}

func (d *Daemon) unwind(ctx context.Context) error {
	if d.loopCancel != nil {
		defer d.loopCancel()
	}
	var errs []error
	d.drainBy = time.Now().Add(serverDrain)
	for i := len(d.stages) - 1; i >= 0; i-- {
		s := d.stages[i]
		if err := s.stop(ctx); err != nil {
			d.log.Warn("stopping "+s.name, "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", s.name, err))
		}
	}
	d.stages = nil
	return errors.Join(errs...)
}

// recoveryOpened notes the account's recovery address as its incident
// opens, when users are told (response.Recovery).
func (d *Daemon) recoveryOpened(ctx context.Context, account string) {
	if d.cfg.Notify.NotifyUser && d.recovery != nil {
		d.recovery.IncidentOpened(ctx, account)
	}
}

// inDir reports whether path lies in dir or below it.
func inDir(path, dir string) bool {
	p, err1 := filepath.Abs(path)
	d, err2 := filepath.Abs(dir)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(d, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}
