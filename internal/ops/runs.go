package ops

import (
	"context"
	"sync"
)

// Playbooks run off every request path: the admin's confirm, the incident
// worker's new evidence and an admin-opened incident only schedule a run.
// Each incident's playbook runs in a goroutine of its own, one run per
// incident at a time, so one slow system (a Zimbra that times out) delays
// that incident only; no lock is held while a step talks to a system. A
// request for an incident whose playbook is running marks it to run once
// more when the current run ends, since that run may have read the
// incident before the confirmation or the new evidence.
type runs struct {
	mu      sync.Mutex
	running map[int64]*runState
	wg      sync.WaitGroup
	slots   chan struct{} // bounds the runs going on at once
}

// maxRuns bounds the playbooks running at once: each writes its steps to
// the store, whose one writer the request path's holds share, and a spam
// wave opens incidents by the hundred.
const maxRuns = 4

type runState struct {
	again bool
	actor string
}

// schedule runs incident id's playbook in the background.
func (s *Service) schedule(id int64, actor string) {
	s.runs.mu.Lock()
	if s.runs.running == nil {
		s.runs.running = map[int64]*runState{}
		s.runs.slots = make(chan struct{}, maxRuns)
	}
	slots := s.runs.slots
	if st := s.runs.running[id]; st != nil {
		st.again, st.actor = true, actor
		s.runs.mu.Unlock()
		return
	}
	st := &runState{}
	s.runs.running[id] = st
	s.runs.wg.Add(1)
	s.runs.mu.Unlock()
	ctx := s.RunContext
	if ctx == nil {
		ctx = context.Background()
	}
	go func() {
		defer s.runs.wg.Done()
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			s.runs.mu.Lock()
			delete(s.runs.running, id)
			s.runs.mu.Unlock()
			return
		}
		defer func() { <-slots }()
		for {
			if _, err := s.runPlaybook(ctx, id, actor); err != nil {
				s.Log.Error("playbook run failed", "incident", id, "actor", actor, "err", err)
			}
			s.runs.mu.Lock()
			if !st.again || ctx.Err() != nil {
				delete(s.runs.running, id)
				s.runs.mu.Unlock()
				return
			}
			st.again, actor = false, st.actor
			s.runs.mu.Unlock()
		}
	}()
}

// running reports whether incident id's playbook is running.
func (s *Service) running(id int64) bool {
	s.runs.mu.Lock()
	defer s.runs.mu.Unlock()
	return s.runs.running[id] != nil
}

// WaitPlaybooks waits until no playbook is running, or ctx ends.
func (s *Service) WaitPlaybooks(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		s.runs.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
