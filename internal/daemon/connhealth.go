package daemon

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/mailbrake/mailbrake/internal/playbook"
)

// connProbeEvery is how often each connector that can be probed is asked
// whether its system answers; connProbeTimeout bounds one probe.
const (
	connProbeEvery   = time.Minute
	connProbeTimeout = 10 * time.Second
)

// connHealth is the last probe of each connector that can be probed
// (playbook.Prober): what /readyz and mailbrake_connector_up report. A
// playbook that cannot lock an account because Zimbra is down is found
// out before the incident, not during it.
type connHealth struct {
	mu   sync.Mutex
	last map[string]probeResult
}

type probeResult struct {
	at    time.Time
	err   error
	since time.Time // first failure of the current run of failures
}

// probeAll probes each connector once, concurrently.
func (h *connHealth) probeAll(ctx context.Context, conns []playbook.Connector) {
	var wg sync.WaitGroup
	for _, c := range conns {
		p, ok := c.(playbook.Prober)
		if !ok {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			started := time.Now()
			pctx, cancel := context.WithTimeout(ctx, connProbeTimeout)
			err := p.Probe(pctx)
			cancel()
			if ctx.Err() != nil {
				return // stopping: not the system's fault
			}
			h.record(c.Name(), started, err)
		}()
	}
	wg.Wait()
}

func (h *connHealth) record(name string, at time.Time, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.last == nil {
		h.last = map[string]probeResult{}
	}
	if prev, ok := h.last[name]; ok && prev.at.After(at) {
		return // a probe started later already answered
	}
	r := probeResult{at: at, err: err}
	if err != nil {
		r.since = at
		if prev, ok := h.last[name]; ok && prev.err != nil {
			r.since = prev.since
		}
	}
	h.last[name] = r
}

// problems describes the connectors whose last probe failed, by name.
func (h *connHealth) problems() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for name, r := range h.last {
		if r.err != nil {
			out = append(out, fmt.Sprintf("connector %s failing since %s (last probe %s): %v",
				name, r.since.UTC().Format(time.RFC3339), r.at.UTC().Format(time.RFC3339), r.err))
		}
	}
	slices.Sort(out)
	return out
}

// up reports each probed connector: true when its last probe succeeded.
func (h *connHealth) up() map[string]bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]bool, len(h.last))
	for name, r := range h.last {
		out[name] = r.err == nil
	}
	return out
}
