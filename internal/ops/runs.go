package ops

import (
	"context"
	"sync"
	"time"

	"github.com/mailbrake/mailbrake/internal/playbook"
	"github.com/mailbrake/mailbrake/internal/store"
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
	ended   map[int64]time.Time // when each incident's last run ended
	wg      sync.WaitGroup
	slots   chan struct{} // bounds the runs going on at once
}

// evidenceRerun is how often more evidence of the same kind reruns an
// incident's playbook (retrying the steps that failed): a spam run adds
// evidence many times a second.
const evidenceRerun = time.Minute

// maxRuns bounds the playbooks running at once: each writes its steps to
// the store, whose one writer the request path's holds share, and a spam
// wave opens incidents by the hundred.
const maxRuns = 4

type runState struct {
	again bool
	actor string
}

// scheduleForEvidence runs incident id's playbook again for evidence that
// changed neither its severity nor its playbook: not while it runs, and
// not within evidenceRerun of the last run's end.
func (s *Service) scheduleForEvidence(id int64) {
	s.runs.mu.Lock()
	ended, ran := s.runs.ended[id]
	busy := s.runs.running[id] != nil
	s.runs.mu.Unlock()
	if busy || ran && s.now().Sub(ended) < evidenceRerun {
		return
	}
	s.schedule(id, "system")
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
			if _, err := s.runPlaybook(ctx, id, actor); err != nil && ctx.Err() != nil {
				s.Log.Info("playbook run cut short by the stop", "incident", id)
			} else if err != nil {
				s.Log.Error("playbook run failed", "incident", id, "actor", actor, "err", err)
			}
			s.runs.mu.Lock()
			if !st.again || ctx.Err() != nil {
				delete(s.runs.running, id)
				if s.runs.ended == nil {
					s.runs.ended = map[int64]time.Time{}
				}
				s.runs.ended[id] = s.now()
				s.runs.mu.Unlock()
				return
			}
			st.again, actor = false, st.actor
			s.runs.mu.Unlock()
		}
	}()
}

// runningNow returns the incidents whose playbook is running.
func (s *Service) runningNow() map[int64]bool {
	s.runs.mu.Lock()
	defer s.runs.mu.Unlock()
	out := make(map[int64]bool, len(s.runs.running))
	for id := range s.runs.running {
		out[id] = true
	}
	return out
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

// ResumePlaybooks schedules the playbook of every active incident that has
// steps due (a run the last stop cut short, a step that failed; not steps
// waiting for an admin's confirmation) and returns how many.
func (s *Service) ResumePlaybooks(ctx context.Context) (int, error) {
	r := s.Response
	if r == nil {
		return 0, nil
	}
	// Listed first, scheduled after: a run reorders the list (updated).
	var due []int64
	for offset := 0; ; offset += 500 {
		page, err := r.Incidents.ListIncidents(ctx, store.IncidentFilter{Active: true, Limit: 500, Offset: offset})
		if err != nil {
			return 0, err
		}
		for i := range page {
			in := &page[i]
			if pb := r.byName(in.Playbook); pb != nil {
				if run, _ := playbook.Due(pb, in); len(run) > 0 {
					due = append(due, in.ID)
				}
			}
		}
		if len(page) < 500 {
			break
		}
	}
	for _, id := range due {
		s.schedule(id, "system")
	}
	return len(due), nil
}
