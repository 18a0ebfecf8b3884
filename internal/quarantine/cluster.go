package quarantine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mailbrake/mailbrake/internal/store"
)

// DefaultCommandWait is how long a release or delete of another node's
// hold waits for that node before it says the node has not answered.
const DefaultCommandWait = 15 * time.Second

// ErrNodeNotAnswering: the node whose queue holds the message has not
// carried out the command yet. The command stays pending and is carried
// out when the node is back; nothing happened meanwhile.
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
	id, err := s.Commands.SubmitCommand(ctx, store.NodeCommand{Node: h.Node, Op: to, HoldID: h.ID, Actor: actor, From: s.Node, CreatedAt: s.now()})
	if err != nil {
		return h, err
	}
	wait := s.CommandWait
	if wait <= 0 {
		wait = DefaultCommandWait
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
			return h, fmt.Errorf("hold %d: node %s has not carried out command %d after %s; it will when it is back (%w)", h.ID, h.Node, id, wait, ErrNodeNotAnswering)
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

// ServeCommands carries out the commands other nodes submit for this
// node's holds until ctx ends: at each wake (a notification, a tick) it
// claims what is pending and runs it as an admin's release or delete
// would, recording the outcome. Only holds of this node are acted on,
// whatever a command says.
func (s *Service) ServeCommands(ctx context.Context, wake <-chan struct{}, done func(c store.NodeCommand, h *store.Hold, err error)) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		}
		for ctx.Err() == nil {
			cs, err := s.Commands.ClaimCommands(ctx, s.Node, 16)
			if err != nil {
				if ctx.Err() == nil {
					s.Log.Warn("cluster: reading node commands failed", "err", err)
				}
				break
			}
			for _, c := range cs {
				h, err := s.runCommand(ctx, c)
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
				if ferr := s.Commands.FinishCommand(context.WithoutCancel(ctx), c.ID, state, detail); ferr != nil {
					s.Log.Warn("cluster: recording a node command's outcome failed", "command", c.ID, "err", ferr)
				}
				if done != nil {
					done(c, h, err)
				}
			}
			if len(cs) == 0 {
				break
			}
		}
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
	switch c.Op {
	case store.HoldReleased:
		return s.Release(ctx, c.HoldID, c.Actor)
	case store.HoldDeleted:
		return s.Delete(ctx, c.HoldID, c.Actor)
	}
	return h, fmt.Errorf("unknown command %q", c.Op)
}
