package quarantine

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/store"
)

// memCommands is the cluster's command table in memory, as
// internal/store/postgres keeps it (the conformance of that one is
// TestCommands there).
type memCommands struct {
	mu    sync.Mutex
	cs    []store.NodeCommand
	ages  map[string]time.Duration // node → heartbeat age
	beats map[string]string        // node → the instance of its last heartbeat
}

func (m *memCommands) SubmitCommand(_ context.Context, c store.NodeCommand) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c.ID, c.State = int64(len(m.cs)+1), store.CommandPending
	m.cs = append(m.cs, c)
	return c.ID, nil
}

func (m *memCommands) Command(_ context.Context, id int64) (*store.NodeCommand, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if id < 1 || int(id) > len(m.cs) {
		return nil, store.ErrNotFound
	}
	c := m.cs[id-1]
	return &c, nil
}

func (m *memCommands) ClaimCommands(_ context.Context, node string, n int) ([]store.NodeCommand, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.NodeCommand
	for i := range m.cs {
		if len(out) < n && m.cs[i].Node == node && m.cs[i].State == store.CommandPending {
			m.cs[i].State = store.CommandRunning
			out = append(out, m.cs[i])
		}
	}
	return out, nil
}

func (m *memCommands) FinishCommand(_ context.Context, id int64, state store.CommandState, detail string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := &m.cs[id-1]
	if c.State != store.CommandRunning {
		return store.ErrConflict
	}
	c.State, c.Detail = state, detail
	return nil
}

func (m *memCommands) WaitingCommands(_ context.Context, holdID int64) ([]store.NodeCommand, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.NodeCommand
	for _, c := range m.cs {
		if c.HoldID == holdID && (c.State == store.CommandPending || c.State == store.CommandRunning) {
			out = append(out, c)
		}
	}
	return out, nil
}

func (m *memCommands) RetireNode(context.Context, string, string, time.Time) (int, int, error) {
	return 0, 0, store.ErrNotFound
}

func (m *memCommands) RequeueCommands(_ context.Context, node string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for i := range m.cs {
		if m.cs[i].Node == node && m.cs[i].State == store.CommandRunning {
			m.cs[i].State = store.CommandPending
			n++
		}
	}
	return n, nil
}

func (m *memCommands) ListenCommands(ctx context.Context, _ string, _ func()) error {
	<-ctx.Done()
	return ctx.Err()
}

func (m *memCommands) Heartbeat(_ context.Context, node, _, instance string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.beats == nil {
		m.beats = map[string]string{}
	}
	prev, ok := m.beats[node]
	m.beats[node] = instance
	return ok && prev != instance, nil
}

func (m *memCommands) Nodes(context.Context) ([]store.NodeStatus, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.NodeStatus
	for n, age := range m.ages {
		out = append(out, store.NodeStatus{Node: n, Age: age})
	}
	return out, nil
}

func (m *memCommands) state(id int64) (store.CommandState, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cs[id-1].State, m.cs[id-1].Detail
}

// twoNodes returns the quarantine services of nodes mx-a (holding the
// messages) and mx-b sharing one store and command table.
func twoNodes(t *testing.T) (a, b *Service, q *fakeQueue, cmds *memCommands) {
	t.Helper()
	a, q, _ = newService(t)
	cmds = &memCommands{ages: map[string]time.Duration{"mx-a": time.Second, "mx-b": time.Second}}
	a.Node, a.SharedStore, a.Commands, a.NodeDownAfter = "mx-a", true, cmds, 15*time.Second
	b = &Service{Store: a.Store, Queue: &fakeQueue{q: map[string]string{}}, Log: a.Log, Now: a.Now,
		Node: "mx-b", SharedStore: true, Commands: cmds, NodeDownAfter: 15 * time.Second, CommandWait: 200 * time.Millisecond}
	return a, b, q, cmds
}

// serve runs a's command loop, woken every few milliseconds, until the
// test ends.
func serve(t *testing.T, a *Service) {
	ctx, cancel := context.WithCancel(context.Background())
	wake := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.ServeCommands(ctx, wake, nil)
	}()
	go func() {
		for ctx.Err() == nil {
			select {
			case wake <- struct{}{}:
			default:
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// TestCommandsAfterKill: a command the holding node's previous process
// claimed and did not finish (killed) is taken again at its next start
// and carried out; one it had carried out before the kill is recorded
// done, not failed as a conflict with itself.
func TestCommandsAfterKill(t *testing.T) {
	a, _, q, cmds := twoNodes(t)
	ctx := t.Context()
	h1, h2 := hold(t, a, q, "4KIL1"), hold(t, a, q, "4KIL2")
	id1, _ := cmds.SubmitCommand(ctx, store.NodeCommand{Node: "mx-a", Op: store.HoldReleased, HoldID: h1.ID, Actor: "web:alice", From: "mx-b"})
	id2, _ := cmds.SubmitCommand(ctx, store.NodeCommand{Node: "mx-a", Op: store.HoldDeleted, HoldID: h2.ID, Actor: "web:alice", From: "mx-b"})
	// The killed process claimed both and deleted the second.
	if cs, _ := cmds.ClaimCommands(ctx, "mx-a", 2); len(cs) != 2 {
		t.Fatalf("claimed %d", len(cs))
	}
	if _, err := a.Delete(ctx, h2.ID, "web:alice"); err != nil {
		t.Fatal(err)
	}
	serve(t, a)
	waitCommand(t, cmds, id1, store.CommandDone)
	waitCommand(t, cmds, id2, store.CommandDone)
	if q.q["4KIL1"] != "active" {
		t.Errorf("released message in %q", q.q["4KIL1"])
	}
	if got, _ := a.Store.GetHold(ctx, h1.ID); got.State != store.HoldReleased {
		t.Errorf("hold 1 %s", got.State)
	}
}

// TestCommandForDownNode: a release asked of a node known to be down
// does not wait for it: the asker is told at once, the command waits and
// is carried out when the node is back.
func TestCommandForDownNode(t *testing.T) {
	a, b, q, cmds := twoNodes(t)
	ctx := t.Context()
	h := hold(t, a, q, "4DOWN")
	cmds.mu.Lock()
	cmds.ages["mx-a"] = time.Minute
	cmds.mu.Unlock()
	b.CommandWait = 30 * time.Second // a wait would be seen
	start := time.Now()
	_, err := b.Release(ctx, h.ID, "web:bob")
	if !errors.Is(err, ErrNodeNotAnswering) || !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("release on a down node: %v", err)
	}
	if waited := time.Since(start); waited > 10*time.Second {
		t.Fatalf("the asker waited %s for a node known down", waited)
	}
	if st, _ := cmds.state(1); st != store.CommandPending {
		t.Fatalf("command %s, want pending", st)
	}
	// The hold shows the release waiting, and a delete asked meanwhile is
	// refused rather than queued behind it.
	if w, err := b.Waiting(ctx, h); err != nil || len(w) != 1 || w[0].Op != store.HoldReleased || w[0].Actor != "web:bob" || w[0].From != "mx-b" {
		t.Fatalf("waiting %+v, %v", w, err)
	}
	if _, err := b.Delete(ctx, h.ID, "web:carol"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a delete while the release waits: %v", err)
	}
	serve(t, a) // the node is back
	waitCommand(t, cmds, 1, store.CommandDone)
	if w, err := b.Waiting(ctx, h); err != nil || len(w) != 0 {
		t.Fatalf("waiting after the node carried it out: %+v, %v", w, err)
	}
	if q.q["4DOWN"] != "active" {
		t.Errorf("message in %q", q.q["4DOWN"])
	}
}

// TestCommandFinishedThroughStop: a command being carried out when the
// node stops is finished and recorded done, not failed for the stop.
func TestCommandFinishedThroughStop(t *testing.T) {
	a, _, q, cmds := twoNodes(t)
	h := hold(t, a, q, "4STOP")
	slow := &slowQueue{fakeQueue: q, entered: make(chan struct{}), release: make(chan struct{})}
	a.Queue = slow
	id, _ := cmds.SubmitCommand(t.Context(), store.NodeCommand{Node: "mx-a", Op: store.HoldReleased, HoldID: h.ID, Actor: "web:alice", From: "mx-b"})
	ctx, cancel := context.WithCancel(context.Background())
	wake := make(chan struct{}, 1)
	wake <- struct{}{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.ServeCommands(ctx, wake, nil)
	}()
	<-slow.entered
	cancel() // the node stops while postsuper runs
	close(slow.release)
	<-done
	if st, detail := cmds.state(id); st != store.CommandDone {
		t.Fatalf("command %s (%s), want done", st, detail)
	}
}

type slowQueue struct {
	*fakeQueue
	entered, release chan struct{}
}

func (s *slowQueue) Release(ctx context.Context, qid string) error {
	close(s.entered)
	<-s.release
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.fakeQueue.Release(ctx, qid)
}

func waitCommand(t *testing.T, cmds *memCommands, id int64, want store.CommandState) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, detail := cmds.state(id)
		if st == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("command %d %s (%s), want %s", id, st, detail, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestNodeNameInUse: a second running process under this node's name
// (a cloned host) is found from the heartbeats — its beats come between
// this process's — and this node's queue sync then changes nothing (each
// would take the other's holds, missing from its own queue, as gone) and
// its commands wait; a restart of the node is not taken for one, and the
// sync resumes when the other process stops.
func TestNodeNameInUse(t *testing.T) {
	a, _, q, cmds := twoNodes(t)
	ctx := t.Context()
	h := hold(t, a, q, "4CLNE")
	// The previous run of mx-a beat; this process's first beat finds it.
	cmds.Heartbeat(ctx, "mx-a", "1", "previous-run")
	if err := a.Beat(ctx, "1"); err != nil || a.NameInUse() {
		t.Fatalf("first beat after a restart: %v, in use %v", err, a.NameInUse())
	}
	clone := &Service{Store: a.Store, Queue: &fakeQueue{q: map[string]string{}}, Log: a.Log, Now: a.Now, Node: "mx-a", SharedStore: true, Commands: cmds}
	clone.Beat(ctx, "1")
	if err := a.Beat(ctx, "1"); err != nil || !a.NameInUse() {
		t.Fatalf("a clone beating between: %v, in use %v", err, a.NameInUse())
	}
	clone.Beat(ctx, "1")
	if _, err := clone.Sync(ctx); !errors.Is(err, ErrNodeNameInUse) {
		t.Fatalf("the clone's sync once it knows: %v", err)
	}
	if _, err := a.Sync(ctx); !errors.Is(err, ErrNodeNameInUse) {
		t.Fatalf("sync while the name is in use: %v", err)
	}
	// The clone stops: a's next beat finds its last one, the one after
	// that a's own.
	if err := a.Beat(ctx, "1"); err != nil || !a.NameInUse() {
		t.Fatalf("the beat after the clone's last: %v, in use %v", err, a.NameInUse())
	}
	if err := a.Beat(ctx, "1"); err != nil || a.NameInUse() {
		t.Fatalf("after the clone stopped: %v, in use %v", err, a.NameInUse())
	}
	if _, err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := a.Store.GetHold(ctx, h.ID); got.State != store.HoldHeld {
		t.Fatalf("hold %s", got.State)
	}
}
