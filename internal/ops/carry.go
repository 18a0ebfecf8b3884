package ops

import (
	"context"
	"fmt"
	"time"

	"github.com/mailbrake/mailbrake/internal/store"
)

// CarryRecords brings a node's own records into the cluster's store when
// it joins one (store.CarryOver), audited there: each account state it
// carries as a state change by "cluster:<node>", and one line saying
// what was carried.
func CarryRecords(ctx context.Context, local store.CarrySource, cluster interface {
	store.CarryTarget
	store.Audit
}, node string, now time.Time) (store.Carried, error) {
	c, err := store.CarryOver(ctx, local, cluster, now)
	if err != nil {
		return c, err
	}
	actor := "cluster:" + node
	var es []store.AuditEntry
	for _, a := range c.Accounts {
		es = append(es, store.AuditEntry{Time: now, Actor: actor, Action: store.AuditAccountState, Target: "account:" + a.Name,
			Detail: fmt.Sprintf("%s (carried from node %s's own records; set %s by %s: %s)", a.State, node, a.StateAt.UTC().Format(time.RFC3339), a.StateBy, a.Reason)})
	}
	es = append(es, store.AuditEntry{Time: now, Actor: actor, Action: store.AuditRecordsCarried, Target: "node:" + node,
		Detail: fmt.Sprintf("%d account states, %d users, %d API tokens, %d trust entries", len(c.Accounts), c.Users, c.Tokens, c.Trust)})
	if err := cluster.AppendAudits(ctx, es); err != nil {
		return c, fmt.Errorf("auditing the carried records: %w", err)
	}
	return c, nil
}
