package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/auth"
	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/connector/zimbra"
	"github.com/mailbrake/mailbrake/internal/counter"
	"github.com/mailbrake/mailbrake/internal/detect"
	"github.com/mailbrake/mailbrake/internal/directory/ldapdir"
	"github.com/mailbrake/mailbrake/internal/engine"
	"github.com/mailbrake/mailbrake/internal/ops"
	"github.com/mailbrake/mailbrake/internal/playbook"
	"github.com/mailbrake/mailbrake/internal/policy"
	"github.com/mailbrake/mailbrake/internal/pwleak"
	"github.com/mailbrake/mailbrake/internal/quarantine"
	"github.com/mailbrake/mailbrake/internal/store"
	"github.com/mailbrake/mailbrake/internal/store/sqlite"
	"github.com/mailbrake/mailbrake/internal/web"
)

// snapshotEvery: how much counter history a crash of a single node can
// lose. Counters are an estimate of recent sending; 30 s of it is noise.
const snapshotEvery = 30 * time.Second

// Daemon is a running mailbrake.
type Daemon struct {
	cfg     *config.Config
	log     *slog.Logger
	version string

	// Ready is closed when every listener is up.
	Ready chan struct{}
	// Addrs are the bound listener addresses (useful with port 0).
	Policy, Milter, HTTP net.Addr
	Socket               string

	store    *sqlite.Store
	counters *counter.Memory
	scores   *counter.Memory // finding scores per account (message count = score)
	engine   *engine.Engine
	identity *engine.Identity
	ops      *ops.Service
	metrics  *metrics
	preview  int
	// wiring records which protocol states each Postfix smtpd service
	// asks the policy server in.
	wiring policy.Wiring
	// reinjection are postfix.reinjection_listeners.
	reinjection []netip.AddrPort

	escalations  chan escalation
	snapshotters []snapshotter
	dets         *detect.Set
	incidents    chan incidentReport
	pwleak       *pwleak.Detector
	auth         *auth.Service
	ldap         *ldapdir.Client
	zimbra       *zimbra.Client
	// extraConnectors are added to the playbook runner (tests).
	extraConnectors []playbook.Connector
}

// snapshotter is in-memory state kept across restarts in the store's
// snapshots, under a key prefix (account names never contain NUL).
type snapshotter struct {
	prefix  string
	dirty   func() map[string][]byte
	restore func(map[string][]byte) error
}

// escalation is an account state change asked for by a verdict, applied
// off the request path.
type escalation struct {
	account string
	to      store.AccountState
	reason  string
}

// New prepares a daemon; Run starts it.
func New(cfg *config.Config, log *slog.Logger, version string) *Daemon {
	return &Daemon{cfg: cfg, log: log, version: version, Ready: make(chan struct{})}
}

// Run serves until ctx is cancelled, then shuts down gracefully.
func (d *Daemon) Run(ctx context.Context) error {
	cfg := d.cfg
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("creating data directory: %w", err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, "mailbrake.db"), d.log)
	if err != nil {
		return fmt.Errorf("opening store: %w", err)
	}
	d.store = st
	defer st.Close()

	d.counters = counter.NewMemory()
	d.scores = counter.NewMemory()
	var dopts = detect.Options{Logger: d.log}
	if cfg.Novelty.Enabled {
		kf := cfg.Novelty.KeyFile
		if !filepath.IsAbs(kf) {
			kf = filepath.Join(cfg.DataDir, kf)
		}
		if dopts.NoveltyKey, err = loadOrCreateKey(kf); err != nil {
			return fmt.Errorf("novelty.key_file: %w", err)
		}
	}
	dets, err := detect.Build(cfg, dopts)
	if err != nil {
		return err
	}
	d.dets = dets
	d.snapshotters = []snapshotter{
		{"", d.counters.Dirty, d.counters.Restore},
		{"score\x00", d.scores.Dirty, d.scores.Restore},
	}
	if dets.Baseline != nil {
		d.snapshotters = append(d.snapshotters, snapshotter{"baseline\x00", dets.Baseline.Dirty, dets.Baseline.Restore})
	}
	if dets.Phish != nil {
		d.snapshotters = append(d.snapshotters, snapshotter{"phish\x00", dets.Phish.Dirty, dets.Phish.Restore})
	}
	if dets.Novelty != nil {
		d.snapshotters = append(d.snapshotters, snapshotter{"novelty\x00", dets.Novelty.Tracker.Dirty, dets.Novelty.Tracker.Restore})
	}
	if ph := dets.Phishers; ph != nil {
		listed, block, allow := ph.Len()
		d.log.Info("phisher lists loaded", "listed", listed, "blocklist_rules", block, "allowlist_rules", allow)
	}
	if snaps, err := st.LoadSnapshots(ctx); err != nil {
		d.log.Warn("loading snapshots failed; starting with empty counters and baselines", "err", err)
	} else {
		d.restoreSnapshots(snaps)
	}
	states, err := ops.NewStates(ctx, st)
	if err != nil {
		return fmt.Errorf("loading account states: %w", err)
	}
	trusts, err := ops.NewTrusts(ctx, st)
	if err != nil {
		return fmt.Errorf("loading trust entries: %w", err)
	}
	volume := &ops.Volume{}
	d.auth = auth.New(st, auth.Options{Log: d.log})
	onErr := engine.ActionAllow
	if cfg.Engine.OnError == "defer" {
		onErr = engine.ActionDefer
	}
	d.incidents = make(chan incidentReport, 1024)
	if d.pwleak, err = d.buildPasswordLeak(); err != nil {
		return err
	}
	detectors := append(dets.All(), volumeCounter{volume})
	if d.pwleak != nil {
		defer d.pwleak.Close()
		detectors = append(detectors, d.pwleak)
	}
	d.engine, err = engine.New(engine.Options{Rules: cfg.Rules, Counters: d.counters, OnError: onErr, Logger: d.log, Detectors: detectors,
		States: states, Scores: d.scores, WatchScore: int64(cfg.Accounts.WatchScore), RestrictScore: int64(cfg.Accounts.RestrictScore),
		ScoreWindow: cfg.Accounts.ScoreWindow.D(), Shadow: cfg.Engine.Shadow, Trust: trusts})
	if err != nil {
		return fmt.Errorf("compiling rules: %w", err)
	}
	d.identity, err = engine.NewIdentity(cfg.Identity.TrustedNetworks, cfg.Identity.AccountHeader)
	if err != nil {
		return err
	}
	d.identity.PolicySender = cfg.Identity.RelayedOnPolicy == "sender"
	for _, l := range cfg.Postfix.ReinjectionListeners {
		ap, err := netip.ParseAddrPort(l)
		if err != nil {
			return fmt.Errorf("postfix.reinjection_listeners: %w", err)
		}
		d.reinjection = append(d.reinjection, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
	}
	d.metrics = newMetrics()
	d.preview = cfg.Quarantine.PreviewBytes

	pf := &quarantine.Postfix{ConfigDir: cfg.Postfix.ConfigDir, Postsuper: cfg.Postfix.Postsuper, Postqueue: cfg.Postfix.Postqueue, Postconf: postconfBeside(cfg.Postfix.Postsuper)}
	qs := &quarantine.Service{Store: st, Queue: pf, Log: d.log, MaxQueueLifetime: maxQueueLifetime(ctx, pf)}
	d.ops = &ops.Service{Quarantine: qs, Store: st, Audit: st, Accounts: st, Counters: d.counters, States: states, Log: d.log,
		TrustStore: st, Trusts: trusts, Volume: volume, Verdicts: &ops.Verdicts{}, ConfigText: func() string { return redactedConfig(cfg) },
		Users: st, Tokens: d.auth, Sessions: d.auth, OnAudit: d.observeAudit, Released: d.expectReinjection}
	d.escalations = make(chan escalation, 1024)
	if d.ops.Response, err = d.buildResponse(ctx, st); err != nil {
		return err
	}
	defer func() {
		if d.ldap != nil {
			d.ldap.Close()
		}
	}()
	if dets.Baseline != nil {
		d.ops.Baseline = func(a string, at time.Time) (any, bool) { return dets.Baseline.Normal(a, at) }
	}
	if dets.Novelty != nil {
		d.ops.Novelty = func(a string, at time.Time) (any, bool) {
			st := dets.Novelty.Tracker.Peek(a, at)
			if st.Known == 0 {
				return nil, false
			}
			return struct {
				FirstTime1h  int    `json:"first_time_recipients_1h"`
				FirstTime24h int    `json:"first_time_recipients_24h"`
				Distinct1h   int    `json:"distinct_recipients_1h"`
				Distinct24h  int    `json:"distinct_recipients_24h"`
				Known        int    `json:"known_recipients"`
				Tracked      string `json:"tracked_for"`
			}{st.FirstTime1h, st.FirstTime24h, st.Distinct1h, st.Distinct24h, st.Known, st.Tracked.Round(time.Minute).String()}, true
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	var shutdowns []func(context.Context) error

	status := api.Status{Version: d.version, StartedAt: time.Now().UTC(), DataDir: cfg.DataDir}

	if cfg.Policy.Enabled {
		ln, err := listen(cfg.Policy.Listen)
		if err != nil {
			return fmt.Errorf("policy listener: %w", err)
		}
		d.Policy = ln.Addr()
		status.Policy = ln.Addr().String()
		srv := d.policyServer()
		shutdowns = append(shutdowns, srv.Shutdown)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
				errc <- fmt.Errorf("policy server: %w", err)
			}
		}()
		d.log.Info("policy server listening", "addr", ln.Addr().String())
	}
	if cfg.Milter.Enabled {
		ln, err := listen(cfg.Milter.Listen)
		if err != nil {
			return fmt.Errorf("milter listener: %w", err)
		}
		d.Milter = ln.Addr()
		status.Milter = ln.Addr().String()
		srv := d.milterServer()
		shutdowns = append(shutdowns, srv.Shutdown)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
				errc <- fmt.Errorf("milter server: %w", err)
			}
		}()
		d.log.Info("milter listening", "addr", ln.Addr().String())
	}
	if cfg.HTTP.Enabled {
		ln, err := net.Listen("tcp", cfg.HTTP.Listen)
		if err != nil {
			return fmt.Errorf("http listener: %w", err)
		}
		d.HTTP = ln.Addr()
		status.HTTP = ln.Addr().String()
		tls := cfg.HTTP.TLSCert != ""
		handler, err := d.httpHandler(tls)
		if err != nil {
			return fmt.Errorf("web UI: %w", err)
		}
		hs := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
		shutdowns = append(shutdowns, hs.Shutdown)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if tls {
				err = hs.ServeTLS(ln, cfg.HTTP.TLSCert, cfg.HTTP.TLSKey)
			} else {
				err = hs.Serve(ln)
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("http server: %w", err)
			}
		}()
		if !tls && !loopbackOnly(ln.Addr()) {
			d.log.Warn("the web UI and API listen on a non-loopback address without TLS: passwords, session cookies and API tokens cross the network in clear; set http.tls_cert and http.tls_key", "addr", ln.Addr().String())
		}
		d.log.Info("http listening", "addr", ln.Addr().String(), "tls", tls, "paths", "/ (web UI) /api/v1/ /healthz /readyz /metrics")
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
	as := &http.Server{
		Handler:           adminAuth(api.Handler(d.ops, d.log)),
		ReadHeaderTimeout: 10 * time.Second,
		ConnContext:       peerContext,
	}
	shutdowns = append(shutdowns, as.Shutdown)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := as.Serve(aln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("admin server: %w", err)
		}
	}()
	d.log.Info("admin socket listening", "path", d.Socket)

	wg.Add(3)
	go func() {
		defer wg.Done()
		d.ops.SyncPeriodically(ctx, cfg.Postfix.SyncInterval.D())
	}()
	go func() {
		defer wg.Done()
		d.escalationLoop(ctx)
	}()
	if d.ops.Response != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.incidentLoop(ctx)
		}()
	}
	go func() {
		defer wg.Done()
		d.snapshotLoop(ctx)
	}()
	if ph := dets.Phishers; ph != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ph.Run(ctx, cfg.Phishers.Reload.D())
		}()
	}
	if nv := dets.Novelty; nv != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(time.Hour)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case now := <-t.C:
					nv.Tracker.Sweep(now)
				}
			}
		}()
	}
	close(d.Ready)
	d.log.Info("mailbrake running", "version", d.version, "data_dir", cfg.DataDir, "rules", len(cfg.Rules))

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		d.log.Error("a server failed; shutting down", "err", runErr)
	}
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	for i := len(shutdowns) - 1; i >= 0; i-- {
		if err := shutdowns[i](sctx); err != nil {
			d.log.Warn("shutdown", "err", err)
		}
	}
	wg.Wait()
	d.saveSnapshots(context.Background())
	_ = os.Remove(d.Socket)
	d.log.Info("mailbrake stopped")
	return runErr
}

func (d *Daemon) snapshotLoop(ctx context.Context) {
	t := time.NewTicker(snapshotEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			d.saveSnapshots(ctx)
			d.counters.Sweep(now)
			d.scores.Sweep(now)
		}
	}
}

// restoreSnapshots hands each snapshotter the entries under its prefix.
func (d *Daemon) restoreSnapshots(all map[string][]byte) {
	parts := make([]map[string][]byte, len(d.snapshotters))
	for i := range parts {
		parts[i] = map[string][]byte{}
	}
	for k, v := range all {
		// The longest matching prefix wins ("" matches everything).
		best := -1
		for i, sn := range d.snapshotters {
			if strings.HasPrefix(k, sn.prefix) && (best < 0 || len(sn.prefix) > len(d.snapshotters[best].prefix)) {
				best = i
			}
		}
		if best >= 0 {
			parts[best][strings.TrimPrefix(k, d.snapshotters[best].prefix)] = v
		}
	}
	for i, sn := range d.snapshotters {
		if err := sn.restore(parts[i]); err != nil {
			d.log.Warn("some snapshots could not be read", "prefix", strings.TrimSuffix(sn.prefix, "\x00"), "err", err)
		}
	}
}

func (d *Daemon) escalationLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-d.escalations:
			if _, err := d.ops.Escalate(ctx, e.account, e.to, e.reason); err != nil {
				d.metrics.storeErrors.WithLabelValues("account").Inc()
				d.log.Error("changing account state failed", "account", e.account, "to", e.to, "err", err)
			}
		}
	}
}

// escalate queues a state change; it never blocks the request path.
func (d *Daemon) escalate(sub *engine.Submission, v engine.Verdict) {
	if v.Escalate == "" {
		return
	}
	reason := fmt.Sprintf("score %d in %s from findings: %s", v.Score, d.cfg.Accounts.ScoreWindow, strings.Join(engine.ReasonStrings(findingReasons(v)), ", "))
	select {
	case d.escalations <- escalation{account: sub.Account, to: v.Escalate, reason: reason}:
	default:
		d.log.Error("account state change dropped: queue full", "account", sub.Account, "to", v.Escalate)
	}
}

// incidentReport is a message's findings, for incidents.
type incidentReport struct {
	account  string
	findings []ops.Finding
}

// reportIncident queues the message's acted-on findings for the incident
// worker; it never blocks the request path. Shadow verdicts and dry-run
// findings open no incident.
func (d *Daemon) reportIncident(sub *engine.Submission, v engine.Verdict, holdID int64) {
	if d.ops.Response == nil || v.Shadow != v.Action || sub.Account == engine.Unauthenticated || sub.Direction == engine.Inbound {
		return
	}
	var fs []ops.Finding
	for _, f := range v.Findings {
		if f.DryRun || f.Action == engine.ActionAllow && f.Score == 0 {
			continue
		}
		fs = append(fs, ops.Finding{Reason: string(f.Reason), Detail: f.Evidence, HoldID: holdID, QueueID: sub.QueueID})
	}
	if len(fs) == 0 {
		return
	}
	select {
	case d.incidents <- incidentReport{account: sub.Account, findings: fs}:
	default:
		d.log.Error("incident report dropped: queue full", "account", sub.Account)
	}
}

func (d *Daemon) incidentLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-d.incidents:
			if err := d.ops.ReportFindings(ctx, r.account, r.findings); err != nil {
				d.metrics.storeErrors.WithLabelValues("incident").Inc()
				d.log.Error("recording an incident failed", "account", r.account, "err", err)
			}
		}
	}
}

func findingReasons(v engine.Verdict) []engine.Reason {
	var out []engine.Reason
	for _, f := range v.Findings {
		if !f.DryRun {
			out = append(out, f.Reason)
		}
	}
	return out
}

func (d *Daemon) saveSnapshots(ctx context.Context) {
	dirty := map[string][]byte{}
	for _, sn := range d.snapshotters {
		for k, v := range sn.dirty() {
			dirty[sn.prefix+k] = v
		}
	}
	if len(dirty) == 0 {
		return
	}
	if err := d.store.SaveSnapshots(ctx, dirty); err != nil {
		d.metrics.storeErrors.WithLabelValues("snapshot").Inc()
		d.log.Warn("saving counter snapshots failed", "err", err)
	}
}

func (d *Daemon) httpHandler(tls bool) (http.Handler, error) {
	mux := http.NewServeMux()
	mux.Handle("/api/", apiGate(d.ops, d.auth, d.log))
	ui, err := web.New(web.Options{Methods: d.ops, Auth: loginMetrics{d.auth, d.metrics}, Logger: d.log.With("path", "web"), Secure: tls, Version: d.version})
	if err != nil {
		return nil, err
	}
	mux.Handle("/", ui.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := d.store.Ping(ctx); err != nil {
			http.Error(w, "store not ready", http.StatusServiceUnavailable)
			return
		}
		var b strings.Builder
		b.WriteString("ready\n")
		// Which stages each Postfix service really sends: a policy
		// service wired at RCPT only never sees END-OF-MESSAGE.
		for _, s := range d.wiring.Services() {
			fmt.Fprintf(&b, "policy service %s: %s (RCPT %d, DATA %d, END-OF-MESSAGE %d, last %s)\n",
				s.Service, s.Stages(), s.RCPT, s.DATA, s.EOM, s.LastSeen.UTC().Format(time.RFC3339))
		}
		w.Write([]byte(b.String()))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.metrics.reg, promhttp.HandlerOpts{}))
	return mux, nil
}

func listen(addr string) (net.Listener, error) {
	network, a := config.ListenNetwork(addr)
	if network == "unix" {
		removeStaleSocket(a)
		ln, err := net.Listen("unix", a)
		if err != nil {
			return nil, err
		}
		// Postfix (user postfix) must be able to connect.
		if err := os.Chmod(a, 0o666); err != nil {
			ln.Close()
			return nil, err
		}
		return ln, nil
	}
	return net.Listen(network, a)
}

// removeStaleSocket removes a socket file nobody listens on (left by a
// crash); a live one is left alone so Listen fails clearly.
func removeStaleSocket(path string) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return
		}
		os.Remove(path)
	}
}

func listenAdmin(path, group string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	removeStaleSocket(path)
	// The socket is created 0600 (umask) so there is no window in which
	// others could connect.
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, err
	}
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("admin.group: %w", err)
		}
		gid, _ := strconv.Atoi(g.Gid)
		if err := os.Chown(path, -1, gid); err != nil {
			ln.Close()
			return nil, err
		}
		if err := os.Chmod(path, 0o660); err != nil {
			ln.Close()
			return nil, err
		}
	}
	return ln, nil
}

type peerKey struct{}

// peerContext records the connecting process's uid (SO_PEERCRED) so every
// admin request is audited with who made it.
func peerContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ctx
	}
	var cred *syscall.Ucred
	raw.Control(func(fd uintptr) {
		cred, err = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	})
	if err != nil || cred == nil {
		return ctx
	}
	name := strconv.Itoa(int(cred.Uid))
	if u, err := user.LookupId(name); err == nil {
		name = u.Username + "(" + name + ")"
	}
	return context.WithValue(ctx, peerKey{}, "cli:"+name)
}

// adminAuth names the actor from the socket peer. Access control is the
// socket's file mode: whoever can connect is an admin.
func adminAuth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		actor, _ := r.Context().Value(peerKey{}).(string)
		if actor == "" {
			http.Error(w, `{"error":"peer credentials unavailable"}`, http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r.WithContext(api.WithActor(r.Context(), api.Actor{Name: actor})))
	})
}

// postconfBeside finds postconf next to postsuper when postsuper is a path.
func postconfBeside(postsuper string) string {
	if strings.Contains(postsuper, "/") {
		return filepath.Join(filepath.Dir(postsuper), "postconf")
	}
	return "postconf"
}

// maxQueueLifetime asks Postfix for maximal_queue_lifetime (best effort).
func maxQueueLifetime(ctx context.Context, pf *quarantine.Postfix) time.Duration {
	args := []string{"-h", "maximal_queue_lifetime"}
	if pf.ConfigDir != "" {
		args = append([]string{"-c", pf.ConfigDir}, args...)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, pf.Postconf, args...).Output()
	if err != nil {
		return 0
	}
	return parsePostfixTime(strings.TrimSpace(string(out)))
}

// parsePostfixTime parses Postfix time values: a number with an optional
// unit s, m, h, d or w (default d for maximal_queue_lifetime).
func parsePostfixTime(s string) time.Duration {
	if s == "" {
		return 0
	}
	unit := time.Duration(24 * time.Hour)
	switch s[len(s)-1] {
	case 's':
		unit, s = time.Second, s[:len(s)-1]
	case 'm':
		unit, s = time.Minute, s[:len(s)-1]
	case 'h':
		unit, s = time.Hour, s[:len(s)-1]
	case 'd':
		unit, s = 24*time.Hour, s[:len(s)-1]
	case 'w':
		unit, s = 7*24*time.Hour, s[:len(s)-1]
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(n) * unit
}
