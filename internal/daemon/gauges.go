package daemon

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailbrake/mailbrake/internal/store"
)

// stateGauges are what an on-call admin alerts on, read at each scrape:
// the held backlog and its oldest message, the accounts by state, and the
// Postfix queue sync.
type stateGauges struct {
	d                                    *Daemon
	held, oldest, accounts, sync, syncOK *prometheus.Desc
	connUp, incidents, statesPending     *prometheus.Desc
	statesRejected, nameInUse            *prometheus.Desc
	learnPending, learnApplied           *prometheus.Desc
	unwritten, spooled, spoolBytes       *prometheus.Desc
	givenUp, spoolErrors                 *prometheus.Desc
}

func newStateGauges(d *Daemon) *stateGauges {
	return &stateGauges{
		d:              d,
		held:           prometheus.NewDesc("mailbrake_held_messages", "Messages on hold now (held records).", nil, nil),
		oldest:         prometheus.NewDesc("mailbrake_oldest_held_seconds", "Age of the oldest message on hold, in seconds (0 without any).", nil, nil),
		accounts:       prometheus.NewDesc("mailbrake_accounts", "Accounts by state (watch, restricted, locked).", []string{"state"}, nil),
		sync:           prometheus.NewDesc("mailbrake_queue_sync_last_run_timestamp_seconds", "When the Postfix queue sync last ran (Unix time; 0: not yet).", nil, nil),
		syncOK:         prometheus.NewDesc("mailbrake_queue_sync_ok", "1 when the last Postfix queue sync succeeded, else 0.", nil, nil),
		incidents:      prometheus.NewDesc("mailbrake_incidents_open", "Incidents not yet resolved or dismissed (open, confirmed, contained), by severity.", []string{"severity"}, nil),
		unwritten:      prometheus.NewDesc("mailbrake_holds_unwritten", "Holds kept in memory because the store does not answer (PostgreSQL down, a full disk); written when it does. Postfix holds the messages meanwhile.", nil, nil),
		learnPending:   prometheus.NewDesc("mailbrake_cluster_learned_pending", "What this node's detectors learned (baselines, campaign runs and marks, remembered phish) that Redis has not taken yet (cluster mode); written when it answers.", nil, nil),
		learnApplied:   prometheus.NewDesc("mailbrake_cluster_learned_applied_total", "What the other nodes' detectors learned, applied here (result: applied; refused by its detector; rejected: unsigned or wrongly signed with cluster.key_file, or applied before).", []string{"result"}, nil),
		spooled:        prometheus.NewDesc("mailbrake_holds_spooled", "Holds of mailbrake_holds_unwritten also in the spool (data_dir/spool/holds): a restart does not lose them.", nil, nil),
		spoolBytes:     prometheus.NewDesc("mailbrake_holds_spool_bytes", "Size of the hold spool's files (at most 1 GiB).", nil, nil),
		givenUp:        prometheus.NewDesc("mailbrake_holds_given_up_total", "Holds waiting for the store left to the queue sync because there were too many (100,000, or 1 GiB of spool): recorded from Postfix's hold queue, with the reasons of the milter's mark or as held-outside-mailbrake.", nil, nil),
		spoolErrors:    prometheus.NewDesc("mailbrake_holds_spool_errors_total", "Holds waiting for the store that could not be written to the spool (kept in memory only).", nil, nil),
		statesPending:  prometheus.NewDesc("mailbrake_cluster_states_pending", "Account state changes this node made that Redis has not taken yet (cluster mode); they are written when it answers.", nil, nil),
		nameInUse:      prometheus.NewDesc("mailbrake_cluster_node_name_in_use", "1 while another running mailbrake records its heartbeat under this node's name (cluster.node): this node's queue sync and node commands wait.", nil, nil),
		statesRejected: prometheus.NewDesc("mailbrake_cluster_states_rejected_total", "Account states read from Redis and ignored: unreadable, or (with cluster.key_file) unsigned or signed with another key.", nil, nil),
		connUp:         prometheus.NewDesc("mailbrake_connector_up", "1 when the connector's last probe (Zimbra, LDAP, Dovecot, passwd-file) succeeded, else 0.", []string{"connector"}, nil),
	}
}

func (g *stateGauges) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{g.held, g.oldest, g.accounts, g.sync, g.syncOK, g.connUp, g.incidents, g.statesPending, g.unwritten,
		g.spooled, g.spoolBytes, g.givenUp, g.spoolErrors, g.learnPending, g.learnApplied, g.statesRejected, g.nameInUse} {
		ch <- d
	}
}

func (g *stateGauges) Collect(ch chan<- prometheus.Metric) {
	d := g.d
	if d.store != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		n, oldest, err := d.store.HeldStats(ctx)
		cancel()
		if err == nil {
			ch <- prometheus.MustNewConstMetric(g.held, prometheus.GaugeValue, float64(n))
			age := 0.0
			if !oldest.IsZero() {
				age = time.Since(oldest).Seconds()
			}
			ch <- prometheus.MustNewConstMetric(g.oldest, prometheus.GaugeValue, age)
		}
	}
	if d.store != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		active, err := d.store.ListIncidents(ctx, store.IncidentFilter{Active: true, Limit: 100000})
		cancel()
		if err == nil {
			by := map[store.Severity]int{}
			for _, s := range []store.Severity{store.SeverityLow, store.SeverityMedium, store.SeverityHigh, store.SeverityCritical} {
				by[s] = 0
			}
			for _, inc := range active {
				by[inc.Severity]++
			}
			for sev, n := range by {
				ch <- prometheus.MustNewConstMetric(g.incidents, prometheus.GaugeValue, float64(n), string(sev))
			}
		}
	}
	if d.ops != nil && d.ops.States != nil {
		for st, n := range d.ops.States.Counts() {
			ch <- prometheus.MustNewConstMetric(g.accounts, prometheus.GaugeValue, float64(n), string(st))
		}
	}
	if d.holds != nil {
		ch <- prometheus.MustNewConstMetric(g.unwritten, prometheus.GaugeValue, float64(d.holds.Parked()))
		n, size := d.holds.Spooled()
		ch <- prometheus.MustNewConstMetric(g.spooled, prometheus.GaugeValue, float64(n))
		ch <- prometheus.MustNewConstMetric(g.spoolBytes, prometheus.GaugeValue, float64(size))
		ch <- prometheus.MustNewConstMetric(g.givenUp, prometheus.CounterValue, float64(d.holds.GivenUp()))
		ch <- prometheus.MustNewConstMetric(g.spoolErrors, prometheus.CounterValue, float64(d.holds.SpoolErrors()))
	}
	if d.cluster != nil {
		ch <- prometheus.MustNewConstMetric(g.statesPending, prometheus.GaugeValue, float64(d.cluster.states.Pending()))
		ch <- prometheus.MustNewConstMetric(g.statesRejected, prometheus.CounterValue, float64(d.cluster.states.Rejected()))
		if l := d.cluster.learn; l != nil {
			ch <- prometheus.MustNewConstMetric(g.learnPending, prometheus.GaugeValue, float64(l.Pending()))
			applied, refused := l.Applied()
			ch <- prometheus.MustNewConstMetric(g.learnApplied, prometheus.CounterValue, float64(applied), "applied")
			ch <- prometheus.MustNewConstMetric(g.learnApplied, prometheus.CounterValue, float64(refused), "refused")
			ch <- prometheus.MustNewConstMetric(g.learnApplied, prometheus.CounterValue, float64(l.Rejected()), "rejected")
		}
	}
	if d.ops != nil && d.ops.Quarantine != nil && d.ops.Quarantine.SharedStore {
		v := 0.0
		if d.ops.Quarantine.NameInUse() {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(g.nameInUse, prometheus.GaugeValue, v)
	}
	if d.ops != nil {
		at, err := d.ops.SyncHealth()
		ts := 0.0
		if !at.IsZero() {
			ts = float64(at.Unix())
		}
		ok := 0.0
		if err == nil && !at.IsZero() {
			ok = 1
		}
		ch <- prometheus.MustNewConstMetric(g.sync, prometheus.GaugeValue, ts)
		ch <- prometheus.MustNewConstMetric(g.syncOK, prometheus.GaugeValue, ok)
	}
	for name, up := range d.connHealth.up() {
		v := 0.0
		if up {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(g.connUp, prometheus.GaugeValue, v, name)
	}
}
