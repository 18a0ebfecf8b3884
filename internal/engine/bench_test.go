package engine_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/counter"
	"github.com/mailbrake/mailbrake/internal/engine"
	"github.com/mailbrake/mailbrake/internal/fingerprint"
)

// BenchmarkEvaluate measures one decision with the default rules, for the
// two stages, over 1,000 accounts.
func BenchmarkEvaluate(b *testing.B) {
	e, err := engine.New(engine.Options{Rules: config.DefaultRules(), Counters: counter.NewMemory()})
	if err != nil {
		b.Fatal(err)
	}
	users := make([]string, 1000)
	for i := range users {
		users[i] = fmt.Sprintf("user%d@example.org", i)
	}
	fp := fingerprint.Classify("Zimbra 8.8.15_GA_4545 (zclient/8.8.15_GA_4545)", "")
	addr := netip.MustParseAddr("192.0.2.1")
	now := time.Now()
	for _, stage := range []engine.Stage{engine.StageRcpt, engine.StageEOM} {
		b.Run(string(stage), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				sub := engine.Submission{Time: now, Stage: stage, Path: engine.PathPolicy, Account: users[i%len(users)],
					AccountSource: engine.SourceSASL, ClientAddress: addr, Client: fp, Sender: users[i%len(users)],
					Recipient: "r@dest.example", RecipientCount: 3, Instance: fmt.Sprint(i % 5000), QueueID: ""}
				if _, err := e.Evaluate(context.Background(), &sub); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
