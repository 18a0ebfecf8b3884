package campaign

import (
	"fmt"
	"testing"
	"time"
)

// TestEventsAcrossNodes: a run split over two nodes, each applying the
// other's events, is counted as one tracker counts it; a text marked as
// spam and a trusted run on one node are so on the other.
func TestEventsAcrossNodes(t *testing.T) {
	one, a, b := New(Options{Key: key}), New(Options{Key: key}), New(Options{Key: key})
	p := a.Print("Mailbox quota", fmt.Sprintf(lure, "Ann", 24, "ann"))
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	hosts := p.Hosts
	var last, lastOne Stats
	for i := range 7 {
		at := t0.Add(time.Duration(i) * 7 * time.Minute)
		node, other := a, b
		if i%2 == 1 {
			node, other = b, a
		}
		last = node.Observe("u@example.edu", p, 10, 8, at)
		node.ObserveHosts(hosts, 8, at)
		lastOne = one.Observe("u@example.edu", p, 10, 8, at)
		one.ObserveHosts(hosts, 8, at)
		for _, ev := range [][]byte{MessageEvent("u@example.edu", p, 10, 8, at), HostsEvent(hosts, 8, at)} {
			if err := other.Apply(ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	if last != lastOne || last.Messages24h != 7 || last.New24h != 70 {
		t.Fatalf("split over two nodes %+v, on one %+v", last, lastOne)
	}
	at := t0.Add(time.Hour)
	if ha, h1 := a.ObserveHosts(hosts, 1, at), one.ObserveHosts(hosts, 1, at); fmt.Sprint(ha) != fmt.Sprint(h1) {
		t.Fatalf("hosts: two nodes %+v, one %+v", ha, h1)
	}
	a.MarkSpam(p, at)
	a.Trust("u@example.edu", p, at.Add(24*time.Hour))
	for _, ev := range [][]byte{SpamEvent(p, at), TrustEvent("u@example.edu", p, at.Add(24*time.Hour))} {
		if err := b.Apply(ev); err != nil {
			t.Fatal(err)
		}
	}
	if !b.MarkedSpam(p) || !b.Trusted("u@example.edu", p, at.Add(time.Hour)) {
		t.Fatal("marked spam and trusted on a, not on b")
	}
	for _, bad := range []string{"", "{", `{"op":"what","at":1}`, `{"op":"msg","at":1}`, `{"op":"hosts","at":0}`, `{"op":"msg","a":"u","n":-1,"at":5}`} {
		if err := b.Apply([]byte(bad)); err == nil {
			t.Errorf("%q applied", bad)
		}
	}
}

// FuzzApply: any event from the stream is applied or refused, never a
// panic.
func FuzzApply(f *testing.F) {
	tr := New(Options{Key: key})
	p := tr.Print("Mailbox quota", fmt.Sprintf(lure, "Ann", 24, "ann"))
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	for _, ev := range [][]byte{MessageEvent("u@x", p, 3, 2, at), HostsEvent(p.Hosts, 2, at), SpamEvent(p, at), TrustEvent("u@x", p, at), []byte(`{"op":"msg"}`), []byte("[]")} {
		f.Add(ev)
	}
	f.Fuzz(func(t *testing.T, ev []byte) {
		New(Options{Key: key, MaxPerAccount: 16, MaxSite: 100}).Apply(ev)
	})
}
