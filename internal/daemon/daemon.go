package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/auth"
	"github.com/mailbrake/mailbrake/internal/campaign"
	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/counter"
	"github.com/mailbrake/mailbrake/internal/detect"
	"github.com/mailbrake/mailbrake/internal/directory/ldapdir"
	"github.com/mailbrake/mailbrake/internal/enforce"
	"github.com/mailbrake/mailbrake/internal/engine"
	"github.com/mailbrake/mailbrake/internal/holdspool"
	"github.com/mailbrake/mailbrake/internal/notify"
	"github.com/mailbrake/mailbrake/internal/ops"
	"github.com/mailbrake/mailbrake/internal/playbook"
	"github.com/mailbrake/mailbrake/internal/policy"
	"github.com/mailbrake/mailbrake/internal/pwleak"
	"github.com/mailbrake/mailbrake/internal/response"
	"github.com/mailbrake/mailbrake/internal/store"
	"github.com/mailbrake/mailbrake/internal/store/postgres"
	"github.com/mailbrake/mailbrake/internal/translate"
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

	// store keeps the records (holds, incidents, accounts, audit,
	// users): this node's SQLite, or with cluster.postgres the cluster's
	// PostgreSQL. snaps keeps what the detectors learn, always in this
	// node's SQLite: each node learns from the mail it sees.
	store    recordStore
	snaps    store.Snapshots
	counters *counter.Memory
	scores   *counter.Memory   // finding scores per account (message count = score)
	cluster  *cluster          // cluster.redis: shared counts and scores instead of the two above
	pgOpts   *postgres.Options // cluster.postgres: the records' PostgreSQL
	// pgLate is set when PostgreSQL did not answer at start: the node
	// decides mail meanwhile and catches up when it answers.
	pgLate *lateRecords
	engine *engine.Engine
	// translate turns policy requests and milter messages into
	// submissions (identity, re-injection listeners).
	translate translate.Translator
	ops       *ops.Service
	metrics   *metrics
	preview   int
	// wiring records which protocol states each Postfix smtpd service
	// asks the policy server in.
	wiring policy.Wiring
	// enforcer carries out verdicts for both adapters; holds writes their
	// holds.
	enforcer *enforce.Enforcer
	holds    *ops.HoldWriter
	// recovery finds where the user of a compromised account is told.
	recovery *response.Recovery

	escalations  chan escalation
	snapshotters []snapshotter
	dets         *detect.Set
	reports      *ops.Reporter
	// spoolReports: findings of holds written from the spool before the
	// incident queue started (reportSpooled), reported when it does.
	spoolMu      sync.Mutex
	spoolReports []spoolReport
	pwleak       *pwleak.Detector
	missingTools []string // Postfix tools that cannot be run (readiness)
	auth         *auth.Service
	ldap         *ldapdir.Client
	// extraConnectors are added to the playbook runner (tests).
	extraConnectors []playbook.Connector

	// Lifecycle (lifecycle.go).
	built            bool
	createNoveltyKey bool
	pwleakOpts       *pwleak.Options
	notifier         *notify.Notifier
	response         responseParts
	stages           []stage
	restored         chan struct{}                 // closed when the background restore has ended
	connHealth       connHealth                    // last probe of each connector
	reloadMu         sync.Mutex                    // one reload at a time
	applied          *config.Config                // what a reload compares with: the start's, then each reload's (under reloadMu)
	helpdesk         sync.WaitGroup                // help-desk mails sent off an admin's request (response.go)
	inForce          atomic.Pointer[config.Config] // the configuration in force: cfg, then each reload's merge (readers of reloadable keys)
	drainBy          time.Time                     // set by a stop: when the servers' drain ends (serverDrain)
	restartKeys      atomic.Pointer[[]string]      // keys the last reload found changed that take effect at the next start (the config view says so)
	restoreHook      func()                        // tests: called before the restore reads
	errc             chan error
	loopCtx          context.Context
	loopCancel       context.CancelFunc
}

// snapshotter is in-memory state kept across restarts in the store's
// snapshots, under a key prefix (account names never contain NUL).
type snapshotter struct {
	prefix  string
	dirty   func() map[string][]byte
	restore func(map[string][]byte) error
	// parts and part, when set, hand out dirty a shard at a time.
	parts func() int
	part  func(int) map[string][]byte
}

// each calls f with the changed snapshots, a part at a time.
func (sn snapshotter) each(f func(map[string][]byte)) {
	if sn.parts == nil {
		f(sn.dirty())
		return
	}
	for i := range sn.parts() {
		f(sn.part(i))
	}
}

// escalation is an account state change asked for by a verdict, applied
// off the request path.
type escalation struct {
	account string
	to      store.AccountState
	reason  string
}

func (d *Daemon) snapshotLoop(ctx context.Context) {
	every(ctx, snapshotEvery, func(now time.Time) {
		select {
		case <-d.restored:
		default:
			return // still restoring: saving now could overwrite what is not read yet
		}
		d.saveSnapshots(ctx)
		d.counters.Sweep(now)
		d.scores.Sweep(now)
	})
}

// every calls f each period until ctx ends.
func every(ctx context.Context, period time.Duration, f func(now time.Time)) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			f(now)
		}
	}
}

// restorePage is how many snapshots are read and handed over at a time.
const restorePage = 4096

// restoreInBackground reads the stored snapshots page by page and hands
// them to the snapshotters, then closes d.restored.
func (d *Daemon) restoreInBackground(ctx context.Context) {
	defer close(d.restored)
	if d.restoreHook != nil {
		d.restoreHook()
	}
	start := time.Now()
	n, after := 0, ""
	bad := map[string]error{} // the first error under each prefix
	defer func() {
		for prefix, err := range bad {
			d.log.Warn("some snapshots could not be read", "prefix", strings.TrimSuffix(prefix, "\x00"), "err", err)
		}
	}()
	for {
		page, err := d.snaps.SnapshotPage(ctx, after, restorePage)
		if err != nil {
			d.log.Warn("restoring detector state failed; continuing with what was read", "restored", n, "err", err)
			return
		}
		all := make(map[string][]byte, len(page))
		for _, sn := range page {
			all[sn.Key] = sn.Value
		}
		for prefix, err := range d.restoreSnapshots(all) {
			if _, seen := bad[prefix]; !seen {
				bad[prefix] = err
			}
		}
		n += len(page)
		if len(page) < restorePage {
			break
		}
		after = page[len(page)-1].Key
	}
	d.log.Info("detector state restored", "snapshots", n, "took", time.Since(start).Round(time.Millisecond))
}

// restoreSnapshots hands each snapshotter the entries under its prefix
// and returns the snapshotters' errors by prefix.
func (d *Daemon) restoreSnapshots(all map[string][]byte) map[string]error {
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
	var errs map[string]error
	for i, sn := range d.snapshotters {
		if len(parts[i]) == 0 {
			continue
		}
		if err := sn.restore(parts[i]); err != nil {
			if errs == nil {
				errs = map[string]error{}
			}
			errs[sn.prefix] = err
		}
	}
	return errs
}

// Restored is closed when the detector state stored at the last stop has
// been read back (Start restores it in the background).
func (d *Daemon) Restored() <-chan struct{} { return d.restored }

// escalationLoop applies queued account state changes until the queue is
// closed and empty.
func (d *Daemon) escalationLoop(ctx context.Context) {
	// States set while the records store did not answer are written when
	// it does: tried every few seconds, and once more as the queue ends
	// (what is left stays in the spool for the next start).
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	// Tried again after pendingStateRetry, doubling while the store does
	// not answer (to pendingStateRetryMax): a store that takes no writes
	// (SQLite locked by another process) has one writer at a time, and
	// the hold writer and the incident reporter wait for it too.
	backoff, next := pendingStateRetry, time.Now().Add(pendingStateRetry)
	writePending := func(force bool) {
		if d.ops.PendingStates() == 0 {
			backoff, next = pendingStateRetry, time.Now().Add(pendingStateRetry)
			return
		}
		if !force && time.Now().Before(next) {
			return
		}
		// A store that stops answering without closing the connection
		// must not hold up the escalations behind it.
		wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		left := d.ops.WritePendingStates(wctx)
		cancel()
		if left > 0 {
			backoff = min(2*backoff, pendingStateRetryMax)
		} else {
			backoff = pendingStateRetry
		}
		next = time.Now().Add(backoff)
	}
	for {
		select {
		case e, ok := <-d.escalations:
			if !ok {
				writePending(true)
				return
			}
			if _, err := d.ops.Escalate(ctx, e.account, e.to, e.reason); err != nil {
				d.metrics.storeErrors.WithLabelValues("account").Inc()
				d.log.Error("changing account state failed", "account", e.account, "to", e.to, "err", err)
			}
		case <-retry.C:
			writePending(false)
		}
	}
}

// pendingStateRetry is how soon account states waiting for the records
// store are tried again, doubling to pendingStateRetryMax while it does
// not answer.
const (
	pendingStateRetry    = 10 * time.Second
	pendingStateRetryMax = 2 * time.Minute
)

// queueEscalation queues a state change; it never blocks the request path.
func (d *Daemon) queueEscalation(account string, to store.AccountState, reason string) {
	select {
	case d.escalations <- escalation{account: account, to: to, reason: reason}:
	default:
		d.log.Error("account state change dropped: queue full", "account", account, "to", to)
	}
}

// queueFindings queues a message's acted-on findings for incidents; it
// never blocks the request path.
// spoolReport is one spooled hold's findings waiting for the incident
// queue.
type spoolReport struct {
	account string
	fs      []ops.Finding
}

// heldFromSpool is the hold writer's HoldWriterOptions.Loaded: a hold
// the previous process spooled and did not write (it was killed while the
// store did not answer) is counted, logged and reports its findings as the
// live hold would have. One the previous process wrote already (killed
// after the store took it) did all that then.
func (d *Daemon) heldFromSpool(stored *store.Hold, created bool, report []holdspool.Finding) {
	if !created {
		return
	}
	enforceMetrics{d.metrics}.Held(stored.Path)
	d.log.Info("message held for review (recorded from the spool after a restart)", "hold", stored.ID, "queue_id", stored.QueueID,
		"account", stored.Account, "reasons", stored.Reasons)
	if len(report) == 0 {
		return
	}
	fs := make([]ops.Finding, len(report))
	for i, f := range report {
		fs[i] = ops.Finding{Reason: f.Reason, Detail: f.Detail, HoldID: stored.ID, QueueID: stored.QueueID}
	}
	d.spoolMu.Lock()
	defer d.spoolMu.Unlock()
	if d.reports == nil { // the writer starts before the incident queue
		d.spoolReports = append(d.spoolReports, spoolReport{stored.Account, fs})
		return
	}
	d.queueFindings(stored.Account, fs)
}

// heldFromQueue counts a hold the queue sync recorded from Postfix's hold
// queue (the process that held it was killed before writing it), as the
// live hold was counted. Its reasons are not reported to the account's
// incident: they come from the milter's mark, a header in the queue file
// that is not signed — a sender able to guess its message's queue ID
// could write one naming another account — so they may label the record
// but never open an incident against anyone.
func (d *Daemon) heldFromQueue(h *store.Hold) {
	enforceMetrics{d.metrics}.Held(h.Path)
}

func (d *Daemon) queueFindings(account string, fs []ops.Finding) {
	if d.ops.Response == nil {
		return
	}
	d.reports.Add(account, fs)
}

// reportGather is how long findings gather before they are written.
const reportGather = 50 * time.Millisecond

// saveChunk is how many snapshots one store transaction writes: a
// million changed accounts are saved in many short transactions, so a
// hold waiting to be recorded never waits for all of them.
const saveChunk = 2048

func (d *Daemon) saveSnapshots(ctx context.Context) {
	chunk := make(map[string][]byte, saveChunk)
	failed := 0
	flush := func() {
		if len(chunk) == 0 {
			return
		}
		if err := d.snaps.SaveSnapshots(ctx, chunk); err != nil {
			if failed == 0 {
				d.metrics.storeErrors.WithLabelValues("snapshot").Inc()
				d.log.Warn("saving counter snapshots failed", "err", err)
			}
			failed++
		}
		clear(chunk)
	}
	for _, sn := range d.snapshotters {
		sn.each(func(part map[string][]byte) {
			for k, v := range part {
				chunk[sn.prefix+k] = v
				if len(chunk) >= saveChunk {
					flush()
				}
			}
		})
	}
	flush()
}

func (d *Daemon) httpHandler(tls bool) (http.Handler, error) {
	mux := http.NewServeMux()
	mux.Handle("/api/", api.Gate(d.ops, d.auth, d.log))
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
		// Ready means mailbrake can record what it decides: the store
		// takes writes (not only reads), and the Postfix queue answers.
		var problems []string
		if err := d.store.Ping(ctx); err != nil {
			problems = append(problems, "store unreachable: "+err.Error())
		} else if err := d.store.WriteProbe(ctx); err != nil {
			problems = append(problems, "store does not take writes: "+err.Error())
		}
		problems = append(problems, d.missingTools...)
		if at, err := d.ops.SyncHealth(); err != nil {
			problems = append(problems, fmt.Sprintf("Postfix queue sync failed at %s: %v", at.UTC().Format(time.RFC3339), err))
		}
		problems = append(problems, d.connHealth.problems()...)
		if len(problems) > 0 {
			http.Error(w, "not ready\n"+strings.Join(problems, "\n"), http.StatusServiceUnavailable)
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
		if err := removeStaleSocket(a); err != nil {
			return nil, err
		}
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

// removeStaleSocket removes a socket left by a mailbrake that did not stop
// cleanly. A socket that answers belongs to a running mailbrake; one that
// cannot be removed (a read-only data directory) is an error that says
// so, instead of the "address already in use" that listening would give.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 {
		return nil
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("%s answers: another mailbrake is running with this data directory or socket", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("a stale socket %s is left from an earlier run and cannot be removed (%w); is the directory read-only?", path, err)
	}
	return nil
}

func listenAdmin(path, group string) (net.Listener, error) {
	var gid = -1
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			return nil, fmt.Errorf("admin.group: %w", err)
		}
		gid, _ = strconv.Atoi(g.Gid)
	}
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		// Created for the socket: the group enters it (0750, its group),
		// no one else does.
		mode := os.FileMode(0o700)
		if gid >= 0 {
			mode = 0o750
		}
		if err := os.MkdirAll(dir, mode); err != nil {
			return nil, err
		}
		if gid >= 0 {
			if err := os.Chown(dir, -1, gid); err != nil {
				return nil, err
			}
			if err := os.Chmod(dir, mode); err != nil { // MkdirAll's mode is masked by the umask
				return nil, err
			}
		}
	} else if err != nil {
		return nil, err
	} else if gid >= 0 && !groupCanEnter(dir, gid) {
		return nil, fmt.Errorf("admin.group: the group %s cannot enter %s, the socket's directory (it needs x for the group or others on it)", group, dir)
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	// The socket is created 0600 (umask) so there is no window in which
	// others could connect.
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, err
	}
	if gid >= 0 {
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

// markedSpam teaches the campaign detector the text of a message an admin
// marked as spam: it is then held from any account.
func (d *Daemon) markedSpam(h *store.Hold) {
	if d.dets == nil || d.dets.Campaign == nil || len(h.Prints) == 0 {
		return
	}
	p, now := campaign.ParsePrints(h.Prints), time.Now()
	d.dets.Campaign.Tracker.MarkSpam(p, now)
	if d.cluster != nil {
		d.cluster.learn.Publish(learnCampaign, campaign.SpamEvent(p, now))
	}
	d.log.Info("text of a message marked as spam is held from every account now", "hold", h.ID, "account", h.Account)
}

// reviewed teaches the detectors a held message an admin judged
// legitimate: its burst becomes part of the account's normal, and its
// run of the same text is trusted for the account until until.
func (d *Daemon) reviewed(h *store.Hold, until time.Time) {
	if d.dets == nil {
		return
	}
	if d.dets.Baseline != nil {
		d.dets.Baseline.Absorb(h.Account, h.HeldAt)
	}
	if d.dets.Campaign != nil && len(h.Prints) > 0 {
		p := campaign.ParsePrints(h.Prints)
		d.dets.Campaign.Tracker.Trust(h.Account, p, until)
		if d.cluster != nil {
			d.cluster.learn.Publish(learnCampaign, campaign.TrustEvent(h.Account, p, until))
		}
	}
	d.log.Info("learned from review: the held burst is part of the account's normal", "hold", h.ID, "account", h.Account)
}

// groupCanEnter reports whether members of gid may traverse dir (its
// group is gid with x, or others have x). The directories above it are
// the admin's to open.
func groupCanEnter(dir string, gid int) bool {
	fi, err := os.Stat(dir)
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	mode := fi.Mode().Perm()
	return mode&0o001 != 0 || ok && int(st.Gid) == gid && mode&0o010 != 0
}
