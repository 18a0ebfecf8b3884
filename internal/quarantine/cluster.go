package quarantine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/mailbrake/mailbrake/internal/store"
)

// DefaultCommandWait is how long a release or delete of another node's
// hold waits for that node before it says the node has not answered.
const DefaultCommandWait = 15 * time.Second

// ErrNodeNotAnswering: the node whose queue holds the message has not
// carried out the command yet (it is down, or slow). The command stays
// pending and is carried out when the node is back.
var ErrNodeNotAnswering = fmt.Errorf("the node that holds the message has not answered: %w", store.ErrUnavailable)

// Local reports whether h is in this node's Postfix queue.
func (s *Service) Local(h *store.Hold) bool { return !s.elsewhere(h) }

// elsewhere reports whether h is in another node's Postfix queue.
func (s *Service) elsewhere(h *store.Hold) bool {
	return s.SharedStore && h.Node != "" && h.Node != s.Node
}

// syncNode is the node whose holds Sync compares with this node's queue:
// only this node's when the store is shared, else every hold ("").
func (s *Service) syncNode() string {
	if s.SharedStore {
		return s.Node
	}
	return ""
}

// forward asks the node that holds h to release or delete it, and waits
// for the outcome.
func (s *Service) forward(ctx context.Context, h *store.Hold, to store.HoldState, actor string) (*store.Hold, error) {
	if s.Commands == nil {
		return h, fmt.Errorf("hold %d is in the queue of node %s: act on it there", h.ID, h.Node)
	}
	// One command at a time per hold: a release asked while a delete
	// waits (or the other way round) would be refused by the node when
	// it is back, long after the asker left.
	// The store refuses a second waiting command atomically; this says
	// which one waits.
	conflict := func() error {
		waiting, err := s.Commands.WaitingCommands(ctx, h.ID)
		if err != nil {
			return err
		}
		if len(waiting) == 0 {
			return nil
		}
		c := waiting[0]
		return fmt.Errorf("hold %d: %s asked on node %s at %s (command %d) waits for node %s: %w",
			h.ID, verbOf(c.Op), c.From, c.CreatedAt.UTC().Format(time.RFC3339), c.ID, h.Node, store.ErrConflict)
	}
	if err := conflict(); err != nil {
		return h, err
	}
	id, err := s.Commands.SubmitCommand(ctx, store.NodeCommand{Node: h.Node, Op: to, HoldID: h.ID, Actor: actor, From: s.Node, CreatedAt: s.now()})
	if errors.Is(err, store.ErrConflict) {
		// Another admin's command got in between.
		if cerr := conflict(); cerr != nil {
			return h, cerr
		}
	}
	if err != nil {
		return h, err
	}
	wait := s.CommandWait
	if wait <= 0 {
		wait = DefaultCommandWait
	}
	if s.nodeDown(ctx, h.Node) {
		// Known to be down: waiting would only hold up the asker (a bulk
		// release of a hundred of its holds would wait for each).
		return h, fmt.Errorf("hold %d: node %s is down; command %d waits for it and is carried out when it is back (%w)", h.ID, h.Node, id, ErrNodeNotAnswering)
	}
	deadline := time.Now().Add(wait)
	poll := 20 * time.Millisecond
	for {
		c, err := s.Commands.Command(ctx, id)
		if err != nil {
			return h, err
		}
		switch c.State {
		case store.CommandDone:
			if got, err := s.Store.GetHold(ctx, h.ID); err == nil {
				return got, nil
			}
			return h, nil
		case store.CommandFailed:
			return h, remoteError(h, c)
		}
		if time.Now().After(deadline) {
			return h, fmt.Errorf("hold %d: node %s has not carried out command %d after %s; it waits for it and is carried out when it is back (%w)", h.ID, h.Node, id, wait, ErrNodeNotAnswering)
		}
		select {
		case <-ctx.Done():
			return h, ctx.Err()
		case <-time.After(poll):
		}
		poll = min(poll*2, 500*time.Millisecond)
	}
}

// Command outcomes a remote node records, so the asker can tell them
// apart as the local errors.
const (
	detailConflict = "conflict: "
	detailNotFound = "not found: "
)

func remoteError(h *store.Hold, c *store.NodeCommand) error {
	switch {
	case len(c.Detail) >= len(detailConflict) && c.Detail[:len(detailConflict)] == detailConflict:
		return fmt.Errorf("node %s: %s: %w", h.Node, c.Detail[len(detailConflict):], store.ErrConflict)
	case len(c.Detail) >= len(detailNotFound) && c.Detail[:len(detailNotFound)] == detailNotFound:
		return fmt.Errorf("node %s: %s: %w", h.Node, c.Detail[len(detailNotFound):], store.ErrNotFound)
	}
	return fmt.Errorf("node %s: %s", h.Node, c.Detail)
}

// ErrNodeNameInUse: another running process records its heartbeat
// under this node's name. Each would take the other's holds, missing from
// its own queue, as released or deleted; the queue sync and the node
// commands wait until the name is this process's alone.
var ErrNodeNameInUse = errors.New("another running mailbrake uses this node's name (cluster.node): give each node its own; the queue sync and node commands wait until then")

// Beat records this node's heartbeat and watches for a second process
// under the node's name: one that writes its own heartbeat between two of
// this process's (the first beat only finds this node's previous run).
func (s *Service) Beat(ctx context.Context, version string) error {
	s.instanceOnce.Do(func() {
		b := make([]byte, 8)
		rand.Read(b)
		s.instance = hex.EncodeToString(b)
	})
	other, err := s.Commands.Heartbeat(ctx, s.Node, version, s.instance)
	if err != nil {
		return err
	}
	first := s.beats.Add(1) == 1
	switch {
	case other && !first:
		if !s.nameInUse.Swap(true) {
			s.Log.Error("cluster: another running mailbrake records its heartbeat as this node; give each node its own cluster.node — this node's queue sync and node commands wait until it stops", "node", s.Node)
		}
	case !other && s.nameInUse.Swap(false):
		s.Log.Info("cluster: this node's name is its own again; the queue sync and node commands resume", "node", s.Node)
	}
	return nil
}

// NameInUse reports whether another running process uses this node's
// name (Beat).
func (s *Service) NameInUse() bool { return s.nameInUse.Load() }

// verbOf names a command's operation.
func verbOf(op store.HoldState) string {
	if op == store.HoldDeleted {
		return "a delete"
	}
	return "a release"
}

// Waiting returns the commands of h not carried out yet, as the hold
// shows them (none on a single node).
func (s *Service) Waiting(ctx context.Context, h *store.Hold) ([]store.WaitingCommand, error) {
	if s.Commands == nil || !s.elsewhere(h) {
		return nil, nil
	}
	cs, err := s.Commands.WaitingCommands(ctx, h.ID)
	if err != nil {
		return nil, err
	}
	var out []store.WaitingCommand
	for _, c := range cs {
		out = append(out, store.WaitingCommand{ID: c.ID, Op: c.Op, Actor: c.Actor, From: c.From, CreatedAt: c.CreatedAt})
	}
	return out, nil
}

// nodeDown reports whether node's last heartbeat is older than
// NodeDownAfter. Not knowing (the store does not say) is not down.
func (s *Service) nodeDown(ctx context.Context, node string) bool {
	if s.NodeDownAfter <= 0 {
		return false
	}
	ns, err := s.Commands.Nodes(ctx)
	if err != nil {
		return false
	}
	for _, n := range ns {
		if n.Node == node {
			return n.Age > s.NodeDownAfter
		}
	}
	return false
}

// commandTimeout bounds one command's run: a release or delete is a
// postsuper and a store write or two.
const commandTimeout = 30 * time.Second

// ServeCommands carries out the commands other nodes submit for this
// node's holds until ctx ends: at each wake (a notification, a tick) it
// claims what is pending, one at a time, and runs it as an admin's
// release or delete would, recording the outcome. Only holds of this node
// are acted on, whatever a command says. A command this node's previous
// process claimed and did not finish (it was killed) is taken again as it
// starts; one claimed is finished even when ctx ends meanwhile, so a stop
// never records a command failed for being stopped.
func (s *Service) ServeCommands(ctx context.Context, wake <-chan struct{}, done func(c store.NodeCommand, h *store.Hold, err error)) {
	if n, err := s.Commands.RequeueCommands(ctx, s.Node); err != nil {
		if ctx.Err() == nil {
			s.Log.Warn("cluster: taking back the node commands the last run of this node did not finish failed", "err", err)
		}
	} else if n > 0 {
		s.Log.Info("cluster: node commands the last run of this node claimed and did not finish are taken again", "commands", n)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		}
		for ctx.Err() == nil && !s.NameInUse() {
			cs, err := s.Commands.ClaimCommands(ctx, s.Node, 1)
			if err != nil {
				if ctx.Err() == nil {
					s.Log.Warn("cluster: reading node commands failed", "err", err)
				}
				break
			}
			if len(cs) == 0 {
				break
			}
			c := cs[0]
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commandTimeout)
			h, err := s.runCommand(cctx, c)
			state, detail := store.CommandDone, ""
			if err != nil {
				state, detail = store.CommandFailed, err.Error()
				switch {
				case errors.Is(err, store.ErrConflict):
					detail = detailConflict + detail
				case errors.Is(err, store.ErrNotFound):
					detail = detailNotFound + detail
				}
			}
			s.finishCommand(cctx, c.ID, state, detail)
			cancel()
			if done != nil {
				done(c, h, err)
			}
		}
	}
}

// finishCommand records a command's outcome, trying again for a while
// when the store does not take it: the command was carried out, and the
// asker waits for its outcome.
func (s *Service) finishCommand(ctx context.Context, id int64, state store.CommandState, detail string) {
	pause := 100 * time.Millisecond
	for {
		err := s.Commands.FinishCommand(ctx, id, state, detail)
		if err == nil || errors.Is(err, store.ErrConflict) {
			return
		}
		select {
		case <-ctx.Done():
			s.Log.Warn("cluster: recording a node command's outcome failed; the command is taken again at this node's next start", "command", id, "state", state, "err", err)
			return
		case <-time.After(pause):
		}
		pause = min(pause*2, 2*time.Second)
	}
}

func (s *Service) runCommand(ctx context.Context, c store.NodeCommand) (*store.Hold, error) {
	h, err := s.Store.GetHold(ctx, c.HoldID)
	if err != nil {
		return nil, err
	}
	if h.Node != s.Node {
		return h, fmt.Errorf("hold %d is not in this node's queue (node %q)", h.ID, h.Node)
	}
	if h.State == c.Op && (c.Op == store.HoldReleased || c.Op == store.HoldDeleted) {
		// Done already: by this command, claimed again after the process
		// that carried it out was killed before recording so, or by
		// another.
		return h, nil
	}
	switch c.Op {
	case store.HoldReleased:
		return s.Release(ctx, c.HoldID, c.Actor)
	case store.HoldDeleted:
		return s.Delete(ctx, c.HoldID, c.Actor)
	}
	return h, fmt.Errorf("unknown command %q", c.Op)
}
