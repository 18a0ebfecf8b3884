package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/counter"
	"github.com/mailbrake/mailbrake/internal/counter/rediscount"
	"github.com/mailbrake/mailbrake/internal/detect"
	"github.com/mailbrake/mailbrake/internal/learnbus"
	"github.com/mailbrake/mailbrake/internal/novelty/redisnovelty"
	"github.com/mailbrake/mailbrake/internal/ops"
	"github.com/mailbrake/mailbrake/internal/statebus"
	"github.com/mailbrake/mailbrake/internal/store"
	"github.com/mailbrake/mailbrake/internal/store/postgres"
	"github.com/mailbrake/mailbrake/internal/store/sqlite"
)

// cluster is what cluster mode adds to a node: the shared counters of
// messages and of finding scores, each falling back to this process while
// Redis does not answer, and the account states every node applies.
type cluster struct {
	node           string // cluster.node, or the host name
	client         redis.UniversalClient
	counts, scores *counter.Failover
	shared         []*rediscount.Counters
	states         *statebus.Bus          // account states
	novelty        *redisnovelty.Failover // nil: novelty off
	learn          *learnbus.Bus          // what the other detectors learn
	learnFrom      string                 // the stream position saved at the last stop
	degraded       *prometheus.GaugeVec   // what: counts, scores, novelty
	key            []byte                 // cluster.key_file: signs states and learned events; nil: unsigned
	spoolDir       string                 // where the counters' outage backlog is kept across a restart
	log            *slog.Logger
}

// newRedisClient builds the client of cluster.redis: the password and CA
// files are read here, so `config check` refuses what serve would. It
// does not connect.
func newRedisClient(rc config.RedisConfig) (redis.UniversalClient, error) {
	var errs config.Errors
	o := &redis.Options{Addr: rc.Address, Username: rc.Username, DB: rc.DB,
		DialTimeout: time.Duration(rc.Timeout), ReadTimeout: time.Duration(rc.Timeout), WriteTimeout: time.Duration(rc.Timeout),
		// A failed command is not retried: the message waits for it. The
		// counters fall back to this process instead (counter.Failover).
		MaxRetries: -1, ContextTimeoutEnabled: true,
		// RESP2: no push notifications to look for before every reply.
		Protocol: 2}
	if rc.PasswordFile != "" {
		b, err := os.ReadFile(rc.PasswordFile)
		switch pw := strings.TrimSpace(string(b)); {
		case err != nil:
			errs = append(errs, config.FieldError{Path: "cluster.redis.password_file", Msg: err.Error()})
		case pw == "":
			errs = append(errs, config.FieldError{Path: "cluster.redis.password_file", Msg: rc.PasswordFile + " is empty"})
		default:
			o.Password = pw
		}
	}
	if rc.TLS {
		host, _, _ := strings.Cut(rc.Address, ":")
		if rc.Cluster {
			host = "" // each node's own name, from the address dialled
		}
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host, InsecureSkipVerify: rc.InsecureSkipVerify}
		if rc.CAFile != "" {
			pem, err := os.ReadFile(rc.CAFile)
			pool := x509.NewCertPool()
			if err == nil && !pool.AppendCertsFromPEM(pem) {
				err = errors.New("no PEM certificate in " + rc.CAFile)
			}
			if err != nil {
				errs = append(errs, config.FieldError{Path: "cluster.redis.ca_file", Msg: err.Error()})
			}
			o.TLSConfig.RootCAs = pool
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if rc.Cluster {
		// Keys are spread by account ({account} in every key a script
		// touches), so each script runs on the master of its account's
		// slot; MOVED and ASK replies during a resharding are followed.
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: append([]string{rc.Address}, rc.Seeds...), Username: o.Username, Password: o.Password,
			DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout, MaxRetries: o.MaxRetries,
			ContextTimeoutEnabled: true, Protocol: o.Protocol, TLSConfig: o.TLSConfig}), nil
	}
	return redis.NewClient(o), nil
}

// newDegradedGauge is mailbrake_cluster_degraded, registered in cluster
// mode only.
func newDegradedGauge() *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "mailbrake_cluster_degraded",
		Help: "1 while the shared Redis does not answer: counts and scores are counted in this node's memory and added to Redis when it answers again; novelty: messages are judged without recipient novelty and recorded when it answers. records: 1 while a node that started without PostgreSQL has not reached it yet (account states from Redis, holds spooled, admin read-only).",
	}, []string{"what"})
}

// newCluster sets up the shared counters of cluster.redis.
func newCluster(d *Daemon, cc config.ClusterConfig) (*cluster, error) {
	rc := cc.Redis
	client, err := newRedisClient(rc)
	if err != nil {
		return nil, err
	}
	node := cc.Node
	if node == "" {
		node, _ = os.Hostname()
	}
	c := &cluster{node: node, client: client, log: d.log, degraded: newDegradedGauge()}
	failover := func(what string) *counter.Failover {
		g := c.degraded.WithLabelValues(what)
		g.Set(0)
		rc := rediscount.NewForNode(client, rc.Prefix+what+":", node)
		c.shared = append(c.shared, rc)
		return &counter.Failover{Shared: rc, Log: d.log.With("shared", what),
			Degraded: func(on bool) {
				if on {
					g.Set(1)
				} else {
					g.Set(0)
				}
			}}
	}
	c.counts, c.scores = failover("counts"), failover("scores")
	var key []byte
	if cc.KeyFile != "" {
		if key, err = readKey(cc.KeyFile); err == nil && key == nil {
			err = fmt.Errorf("%s does not exist; create it once (openssl rand -hex 32 > %s; chmod 600) and copy it to every node", cc.KeyFile, cc.KeyFile)
		}
		if err == nil && len(key) < 32 {
			err = fmt.Errorf("%s holds %d bytes; want at least 32", cc.KeyFile, len(key))
		}
		if err != nil {
			return nil, config.Errors{config.FieldError{Path: "cluster.key_file", Msg: err.Error()}}
		}
	}
	c.key = key
	c.states = statebus.New(client, rc.Prefix, node, key, d.log)
	return c, nil
}

// shareNovelty makes the novelty detector record in Redis: every node
// knows the recipients written to through any MTA. The nodes must hash
// under one key (novelty.key_file copied to each): a node with another
// key is refused, when Redis answers at start, rather than make every
// recipient look first-time.
func (c *cluster) shareNovelty(ctx context.Context, n *detect.Novelty, prefix string, idle time.Duration, log *slog.Logger) error {
	g := c.degraded.WithLabelValues("novelty")
	g.Set(0)
	m := redisnovelty.New(c.client, prefix+"novelty:", redisnovelty.Options{Hasher: n.Tracker, Idle: idle})
	c.novelty = &redisnovelty.Failover{M: m, Log: log.With("shared", "novelty"), Degraded: func(on bool) {
		if on {
			g.Set(1)
		} else {
			g.Set(0)
		}
	}}
	jctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	switch err := m.Join(jctx, time.Now()); {
	case errors.Is(err, redisnovelty.ErrOtherKey):
		return fmt.Errorf("novelty.key_file: %w", err)
	case err != nil:
		log.Warn("cluster: Redis does not answer at start; the novelty memory is joined when it does", "err", err)
	}
	n.Shared = c.novelty
	return nil
}

// shareLearning makes the detectors that learn in this node's memory
// (baselines, campaign runs and marks, remembered phish, origins) tell the other
// nodes what they learn, and apply what the others learned: a phish
// received through one MTA and answered through another is caught, and a
// text marked as spam on one node is held on every node.
func (c *cluster) shareLearning(dets *detect.Set, prefix string, log *slog.Logger) {
	b := learnbus.New(c.client, prefix, c.node, log.With("shared", "learning"), learnbus.Options{Key: c.key})
	if m := dets.Phish; m != nil {
		m.Learned = func(ev []byte) { b.Publish(learnPhish, ev) }
		b.Handle(learnPhish, m.ApplyLearned)
	}
	if k := dets.Campaign; k != nil {
		k.Learned = func(ev []byte) { b.Publish(learnCampaign, ev) }
		b.Handle(learnCampaign, k.Tracker.Apply)
	}
	if bl := dets.Baseline; bl != nil {
		bl.Learned = func(ev []byte) { b.Publish(learnBaseline, ev) }
		b.Handle(learnBaseline, bl.ApplyLearned)
	}
	if o := dets.Origin; o != nil {
		o.Learned = func(ev []byte) { b.Publish(learnOrigin, ev) }
		b.Handle(learnOrigin, o.Tracker.ApplyLearned)
	}
	c.learn = b
}

// The kinds of learned events, one per detector.
const (
	learnPhish    = "phish"
	learnCampaign = "campaign"
	learnBaseline = "baseline"
	learnOrigin   = "origin"
)

// learnedSnapshotter saves the learned-event stream's position with the
// detectors' snapshots (before them, so that what was applied after it
// is applied again at most, never missed) and reads it at start.
func (c *cluster) learnedSnapshotter() snapshotter {
	saved, savedHW := "", ""
	return snapshotter{prefix: "learnbus\x00",
		dirty: func() map[string][]byte {
			out := map[string][]byte{}
			if pos := c.learn.Position(); pos != "" && pos != saved {
				saved = pos
				out["pos"] = []byte(pos)
			}
			// Each node's highest event number applied: an event copied
			// back into the stream later is not applied again.
			if hw, err := json.Marshal(c.learn.HighWater()); err == nil && string(hw) != savedHW && string(hw) != "{}" {
				savedHW = string(hw)
				out["hw"] = hw
			}
			if len(out) == 0 {
				return nil
			}
			return out
		},
		restore: func(m map[string][]byte) error {
			if p, ok := m["pos"]; ok {
				c.learnFrom = string(p)
			}
			if b, ok := m["hw"]; ok {
				var hw map[string]int64
				if err := json.Unmarshal(b, &hw); err != nil {
					return fmt.Errorf("learned events' numbers: %w", err)
				}
				c.learn.SetHighWater(hw)
			}
			return nil
		}}
}

// close waits for the replays of an outage's counts, then stops the
// shared counters and the client.
func (c *cluster) close() error {
	c.counts.WaitReplay()
	c.scores.WaitReplay()
	c.saveBacklogs()
	if c.novelty != nil {
		c.novelty.Close()
	}
	for _, s := range c.shared {
		s.Close()
	}
	return c.client.Close()
}

// recordStore is what the daemon keeps its records in: either backend.
type recordStore interface {
	store.Quarantine
	store.Audit
	store.Accounts
	store.Incidents
	store.Users
	store.Sessions
	store.Trust
	store.Retention
	Ping(ctx context.Context) error
	WriteProbe(ctx context.Context) error
	HeldStats(ctx context.Context) (int, time.Time, error)
	Close() error
}

var (
	_ recordStore = (*sqlite.Store)(nil)
	_ recordStore = (*postgres.Store)(nil)
)

// postgresOptions builds the options of cluster.postgres: the password
// file is read and the URL parsed here, so `config check` refuses what
// serve would. A password written in the URL is refused: secrets come
// from files, never from the configuration.
func postgresOptions(pc config.PostgresConfig, log *slog.Logger) (postgres.Options, error) {
	var errs config.Errors
	o := postgres.Options{ConnString: pc.URL, MaxConns: int32(pc.MaxConns), Logger: log}
	switch err := postgres.CheckConnString(pc.URL); {
	case errors.Is(err, postgres.ErrConnStringPassword):
		errs = append(errs, config.FieldError{Path: "cluster.postgres.url", Msg: "holds a password: put it in cluster.postgres.password_file"})
	case err != nil:
		errs = append(errs, config.FieldError{Path: "cluster.postgres.url", Msg: err.Error()})
	}
	if pc.PasswordFile != "" {
		b, err := os.ReadFile(pc.PasswordFile)
		switch pw := strings.TrimSpace(string(b)); {
		case err != nil:
			errs = append(errs, config.FieldError{Path: "cluster.postgres.password_file", Msg: err.Error()})
		case pw == "":
			errs = append(errs, config.FieldError{Path: "cluster.postgres.password_file", Msg: pc.PasswordFile + " is empty"})
		default:
			o.Password = pw
		}
	}
	if len(errs) > 0 {
		return o, errs
	}
	return o, nil
}

// carriedMarker, in the data directory, says this node brought its own
// records into the cluster's PostgreSQL: once, so that a user deleted in
// the cluster later is not brought back from the node's old database.
const carriedMarker = "cluster-records-carried"

// carryRecords brings, the first time this node starts with
// cluster.postgres, what it recorded while it ran alone — restricted and
// locked accounts above all, then its users, API tokens and trust
// entries — into PostgreSQL (ops.CarryRecords), and shares the carried
// account states with the running nodes.
func (d *Daemon) carryRecords(ctx context.Context, local *sqlite.Store, pg *postgres.Store) error {
	marker := filepath.Join(d.cfg.DataDir, carriedMarker)
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	c, err := ops.CarryRecords(ctx, local, pg, d.cluster.node, time.Now())
	if err != nil {
		return err
	}
	for _, a := range c.Accounts {
		d.cluster.states.Publish(ctx, a)
	}
	if len(c.Accounts)+c.Users+c.Tokens+c.Trust > 0 {
		d.log.Info("cluster: this node's own records brought into PostgreSQL", "accounts", len(c.Accounts), "users", c.Users, "tokens", c.Tokens, "trust", c.Trust)
	}
	return os.WriteFile(marker, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o600)
}

// backlogFiles are the counters whose outage backlog is kept across a
// restart, and the spool files they are kept in.
func (c *cluster) backlogFiles() map[string]*counter.Failover {
	return map[string]*counter.Failover{"counts-backlog.json": c.counts, "scores-backlog.json": c.scores}
}

// saveBacklogs keeps in the spool what the counters counted during an
// outage of Redis and could not add to it before the stop; the next start
// adds it (loadBacklogs). Nothing waiting: no file.
func (c *cluster) saveBacklogs() {
	if c.spoolDir == "" {
		return
	}
	for name, f := range c.backlogFiles() {
		path := filepath.Join(c.spoolDir, name)
		b := f.Backlog()
		if b.Empty() {
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				c.log.Warn("cluster: removing a counter backlog file failed", "file", path, "err", err)
			}
			continue
		}
		data, err := json.Marshal(b)
		if err == nil {
			err = ops.WriteFileSync(path, data)
		}
		if err != nil {
			c.log.Error("cluster: keeping what was counted during the Redis outage failed; it is lost", "file", path, "err", err)
			continue
		}
		c.log.Warn("cluster: Redis did not take everything counted during its outage; kept for the next start", "file", path,
			"messages", len(b.Messages), "account_minutes", len(b.Minutes))
	}
}

// loadBacklogs puts back what the last run kept in the spool (saveBacklogs):
// added to Redis when it answers. A file is removed once read (the next
// stop writes what is still waiting); one that cannot be read is set aside
// (.bad) and named.
func (c *cluster) loadBacklogs() {
	if c.spoolDir == "" {
		return
	}
	for name, f := range c.backlogFiles() {
		path := filepath.Join(c.spoolDir, name)
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		var b counter.Backlog
		if err == nil {
			b, err = counter.DecodeBacklog(data)
		}
		if err != nil {
			c.log.Error("cluster: a counter backlog file cannot be read; set aside", "file", path, "err", err)
			os.Rename(path, path+".bad")
			continue
		}
		f.Restore(b)
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		f.Retry(rctx) // added now when Redis answers, not at the next charge
		cancel()
		os.Remove(path)
		c.log.Info("cluster: counted during a Redis outage before the last stop; added to Redis when it answers", "file", path,
			"messages", len(b.Messages), "account_minutes", len(b.Minutes))
	}
}
