package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/store"
	"github.com/mailbrake/mailbrake/internal/store/sqlite"
)

// TestRecordsReadOnly: Status's read-only flag follows the store's write
// probe, probed at most once per RecordsCheckEvery; a request that fails
// because the store takes no writes says so (503) instead of the driver's
// error, through the API handler too; other errors stay as they are.
func TestRecordsReadOnly(t *testing.T) {
	s, _, clk := newService(t)
	st := s.Store.(*sqlite.Store)
	var probes atomic.Int32
	s.Records = &Records{Kind: api.RecordsSQLite, Now: clk.now, Probe: func(ctx context.Context) error {
		probes.Add(1)
		return st.WriteProbe(ctx)
	}}
	ctx := admin(t.Context())
	status := func() *api.Status {
		t.Helper()
		v, err := s.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := status(); v.ReadOnly || v.Records != api.RecordsSQLite || v.ReadOnlyNote() != "" || probes.Load() != 1 {
		t.Fatalf("status %+v after %d probes", v, probes.Load())
	}
	status()
	if probes.Load() != 1 {
		t.Fatalf("%d probes within %s", probes.Load(), RecordsCheckEvery)
	}
	clk.add(RecordsCheckEvery)
	status()
	if probes.Load() != 2 {
		t.Fatalf("%d probes after %s", probes.Load(), RecordsCheckEvery)
	}
	// The API's own errors are not the store's: no probe.
	if err := s.Explain(ctx, fmt.Errorf("hold 9: %w", store.ErrNotFound)); !errors.Is(err, api.ErrNotFound) || probes.Load() != 2 {
		t.Fatalf("not found explained as %v (%d probes)", err, probes.Load())
	}
	// Another error while the store answers: probed again, left as is.
	other := errors.New("something else")
	if err := s.Explain(ctx, other); err != other || probes.Load() != 3 {
		t.Fatalf("explained %v (%d probes)", err, probes.Load())
	}

	// The store goes away: the cached flag says so within the interval,
	// a failed request at once.
	st.Close()
	_, err := s.SetAccountState(ctx, api.SetAccountStateRequest{Account: "eve@example.org", State: "restricted", Reason: "spam run"})
	if err == nil {
		t.Fatal("a state change with the store closed succeeded")
	}
	driver := err.Error()
	err = s.Explain(ctx, err)
	if !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "SQLite database takes no writes") || strings.Contains(err.Error(), driver) {
		t.Fatalf("explained as %v", err)
	}
	n := probes.Load()
	if v := status(); !v.ReadOnly || !strings.Contains(v.ReadOnlyNote(), "hold queue") || probes.Load() != n {
		t.Fatalf("status %+v, %d probes (had %d)", v, probes.Load(), n)
	}
	// Known down: the next failure within the interval does not probe.
	if err := s.Explain(ctx, other); !errors.Is(err, api.ErrUnavailable) || probes.Load() != n {
		t.Fatalf("explained %v, %d probes (had %d)", err, probes.Load(), n)
	}
	// Through the API handler: 503 with the words, not a 500.
	w := httptest.NewRecorder()
	r := httptest.NewRequestWithContext(ctx, "POST", "/v1/accounts/eve@example.org/state", strings.NewReader(`{"state":"restricted","reason":"spam run"}`))
	api.Handler(s, slog.New(slog.DiscardHandler)).ServeHTTP(w, r)
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "takes no writes") {
		t.Fatalf("API: %d %s", w.Code, w.Body.String())
	}
}

// TestRecordsProbesDoNotOverlap: callers arriving while a probe runs
// wait for it instead of starting their own (or, arriving after it,
// take its fresh result).
func TestRecordsProbesDoNotOverlap(t *testing.T) {
	var probes atomic.Int32
	entered, release := make(chan struct{}), make(chan struct{})
	r := &Records{Probe: func(context.Context) error {
		if probes.Add(1) == 1 {
			close(entered)
		}
		<-release
		return nil
	}}
	var wg sync.WaitGroup
	wg.Go(func() { r.Check(t.Context()) })
	<-entered
	for range 4 {
		wg.Go(func() { r.Check(t.Context()) })
	}
	close(release)
	wg.Wait()
	if n := probes.Load(); n != 1 {
		t.Fatalf("%d probes", n)
	}
}

// TestListNodesAlone: without shared records a node lists itself, up.
func TestListNodesAlone(t *testing.T) {
	s, _, clk := newService(t)
	s.Node, s.Status0.Version = "mx1", "1.2.3"
	l, err := s.ListNodes(t.Context())
	if err != nil || l.Shared || len(l.Nodes) != 1 || l.DownAfterSeconds != 15 {
		t.Fatalf("%+v, %v", l, err)
	}
	if n := l.Nodes[0]; n.Name != "mx1" || n.State != api.NodeUp || !n.Self || n.Version != "1.2.3" || !n.SeenAt.Equal(clk.now()) {
		t.Fatalf("%+v", n)
	}
}
