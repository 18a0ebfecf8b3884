package engine_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/counter"
	"github.com/mailbrake/mailbrake/internal/counter/rediscount"
	"github.com/mailbrake/mailbrake/internal/engine"
	"github.com/mailbrake/mailbrake/internal/redistest"
	"github.com/mailbrake/mailbrake/internal/store"
	"github.com/mailbrake/mailbrake/internal/verdict"
)

// TestSharedCountersDecideAsMemory: with Redis counters (cluster mode) an
// RCPT is read and charged in one script call (store.PeekCharger) and a
// deferred recipient's charge is taken back; over a random stream of
// messages from three accounts through policy RCPTs, some ended by the
// milter, every verdict and the final totals are those of the in-memory
// counters, which read first and charge after deciding.
func TestSharedCountersDecideAsMemory(t *testing.T) {
	srv := redistest.New(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: srv.Password})
	t.Cleanup(func() { c.Close() })
	rc := rediscount.New(c, "mb-engine:")
	t.Cleanup(rc.Close)
	shared := &counter.Failover{Shared: rc}
	if _, ok := any(shared).(store.PeekCharger); !ok {
		t.Fatal("the daemon's shared counters do not read and charge in one call")
	}
	rules := []config.Rule{
		{Name: "rph", Reason: "rate-recipients-hour", Stage: config.StageRcpt, Verdict: verdict.Defer.Ptr(), When: []config.Condition{{Fact: "recipients_1h", Gt: ptr(40.0)}}},
		{Name: "mph", Reason: "rate-messages-hour", Stage: config.StageRcpt, Verdict: verdict.Defer.Ptr(), When: []config.Condition{{Fact: "messages_1h", Gte: ptr(9.0)}}},
	}
	mem := counter.NewMemory()
	em, err := engine.New(engine.Options{Rules: rules, Counters: mem, OnError: engine.ActionAllow})
	if err != nil {
		t.Fatal(err)
	}
	es, err := engine.New(engine.Options{Rules: rules, Counters: shared, OnError: engine.ActionAllow})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 6))
	accounts := []string{"a@example.edu", "b@example.edu", "c@example.edu"}
	at := t0
	deferred := 0
	for i := range 60 {
		acct := accounts[rng.IntN(len(accounts))]
		at = at.Add(time.Duration(rng.IntN(300)) * time.Second)
		inst, qid := fmt.Sprintf("m%d", i), fmt.Sprintf("4Q%d", i)
		n := 1 + rng.IntN(12)
		for j := range n {
			q := qid
			if j == 0 {
				q = "" // Postfix names the queue ID from the first accepted recipient on
			}
			sub := func() *engine.Submission {
				s := rcpt(inst, q, uint16(42000+i), fmt.Sprintf("r%d@example.org", j))
				s.Account, s.Sender, s.Time = acct, acct, at
				return s
			}
			vm, vs := eval(t, em, sub()), eval(t, es, sub())
			if vm.Action != vs.Action || vm.Totals != vs.Totals {
				t.Fatalf("message %d RCPT %d of %s: memory %s %+v, redis %s %+v", i, j, acct, vm.Action, vm.Totals, vs.Action, vs.Totals)
			}
			if vs.Action == engine.ActionDefer {
				deferred++
			}
		}
		if rng.IntN(2) == 0 {
			end := func() *engine.Submission {
				return &engine.Submission{Stage: engine.StageEOM, Path: engine.PathPolicy, Account: acct, AccountSource: engine.SourceSASL,
					ClientAddress: client, ClientPort: uint16(42000 + i), Sender: acct, RecipientCount: n, Instance: inst, QueueID: qid, Time: at}
			}
			if vm, vs := eval(t, em, end()), eval(t, es, end()); vm.Action != vs.Action || vm.Totals != vs.Totals {
				t.Fatalf("message %d end: memory %s %+v, redis %s %+v", i, vm.Action, vm.Totals, vs.Action, vs.Totals)
			}
		}
	}
	if deferred == 0 {
		t.Fatal("no recipient was deferred: the stream does not test taking charges back")
	}
	for _, a := range accounts {
		want, _ := mem.Peek(ctx, a, at)
		deadline := time.Now().Add(5 * time.Second)
		for {
			got, err := shared.Peek(ctx, a, at) // the last refunds are pipelined
			if err == nil && got == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: redis %+v, memory %+v (%v)", a, got, want, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	t.Logf("%d recipients deferred", deferred)
}
