package detect

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/counter"
	"github.com/mailbrake/mailbrake/internal/engine"
	"github.com/mailbrake/mailbrake/internal/fingerprint"
)

// BenchmarkEOM measures one end-of-message decision with the default
// rules and every default detector, over 100,000 accounts taken in turn
// (the loadgen "--users 100000 --skew 0" case: nearly every message is
// from an account not seen for a while) and over 1,000.
func BenchmarkEOM(b *testing.B) {
	for _, n := range []int{1000, 100000} {
		b.Run(fmt.Sprintf("accounts=%d", n), func(b *testing.B) {
			cfg := config.Default()
			set, err := Build(cfg, Options{})
			if err != nil {
				b.Fatal(err)
			}
			e, err := engine.New(engine.Options{Rules: cfg.Rules, Counters: counter.NewMemory(), Detectors: set.All()})
			if err != nil {
				b.Fatal(err)
			}
			users := make([]string, n)
			for i := range users {
				users[i] = fmt.Sprintf("user%05d@example.com", i)
			}
			fp := fingerprint.Classify("Mozilla Thunderbird", "")
			t0 := time.Now()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				u := users[i%n]
				sub := engine.Submission{Time: t0.Add(time.Duration(i) * time.Millisecond), Stage: engine.StageEOM, Path: engine.PathPolicy, Account: u,
					AccountSource: engine.SourceSASL, Client: fp, Sender: u, Recipients: []string{fmt.Sprintf("rcpt%d@example%d.net", i%100000, i%50)},
					RecipientCount: 1, QueueID: fmt.Sprintf("Q%d", i)}
				if _, err := e.Evaluate(context.Background(), &sub); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkEOMWithBody is BenchmarkEOM on the milter path with a message
// body of 8 KiB (plain text with a quoted reply), so the campaign
// fingerprint runs on every message.
func BenchmarkEOMWithBody(b *testing.B) {
	cfg := config.Default()
	cfg.Novelty.Learning = 0
	set, err := Build(cfg, Options{})
	if err != nil {
		b.Fatal(err)
	}
	e, err := engine.New(engine.Options{Rules: cfg.Rules, Counters: counter.NewMemory(), Detectors: set.All()})
	if err != nil {
		b.Fatal(err)
	}
	var body strings.Builder
	body.WriteString("From: a@example.com\r\nSubject: report\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello Ann,\r\n\r\n")
	for body.Len() < 8<<10 {
		body.WriteString("the figures for the third quarter are attached; see https://intranet.example.com/q3 for the details.\r\n> earlier text quoted from the thread\r\n")
	}
	raw := []byte(body.String())
	fp := fingerprint.Classify("Mozilla Thunderbird", "")
	t0 := time.Now()
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	i := 0
	for b.Loop() {
		u := fmt.Sprintf("user%04d@example.com", i%1000)
		sub := engine.Submission{Time: t0.Add(time.Duration(i) * time.Millisecond), Stage: engine.StageEOM, Path: engine.PathMilter, Account: u,
			AccountSource: engine.SourceSASL, Client: fp, Sender: u, Recipients: []string{fmt.Sprintf("rcpt%d@example%d.net", i%100000, i%50)},
			RecipientCount: 1, QueueID: fmt.Sprintf("Q%d", i), Subject: "report", Body: raw}
		if _, err := e.Evaluate(context.Background(), &sub); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
