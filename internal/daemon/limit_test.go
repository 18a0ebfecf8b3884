package daemon

import (
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// value reads a gauge's or counter's value.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Gauge != nil {
		return d.Gauge.GetValue()
	}
	return d.Counter.GetValue()
}

// TestLimitListener: beyond its limit a listener accepts no more
// connections until one closes, and counts the wait (issue 13: a flood of
// slow clients took every descriptor).
func TestLimitListener(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	open := prometheus.NewGauge(prometheus.GaugeOpts{Name: "open"})
	waited := prometheus.NewCounter(prometheus.CounterOpts{Name: "waited"})
	ln := newLimitListener(raw, 2, open, waited)
	defer ln.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	for range 3 {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	first, second := <-accepted, <-accepted
	select {
	case <-accepted:
		t.Fatal("a third connection was accepted beyond the limit of 2")
	case <-time.After(200 * time.Millisecond):
	}
	if value(t, open) != 2 {
		t.Errorf("open = %v", value(t, open))
	}
	first.Close()
	first.Close() // twice: counted once
	third := <-accepted
	defer third.Close()
	second.Close()
	if value(t, waited) < 1 || value(t, open) != 1 {
		t.Errorf("waited %v, open %v", value(t, waited), value(t, open))
	}
}
