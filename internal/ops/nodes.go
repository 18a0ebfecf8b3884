package ops

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/store"
)

// NodeBeat is how often a node of a cluster with cluster.postgres records
// its heartbeat (and looks for commands it may have missed).
const NodeBeat = 5 * time.Second

// NodeDownAfter is the age of its last heartbeat past which a node is
// down: three beats, so that one slow or lost write (a busy database, a
// reconnection) never shows a live node as down, while a stopped node
// shows within 15 seconds — as long as a release waits for it
// (quarantine.DefaultCommandWait).
const NodeDownAfter = 3 * NodeBeat

// RetireNode implements api.Methods: a node taken out of the cluster (an
// MTA decommissioned) is forgotten — it no longer shows, down, on every
// node's list — and what waited for it ends: its held messages are marked
// deleted (its Postfix queue went with it) and the releases and deletes
// asked of it fail. A node that is up, or this node, is refused: stop it
// first.
func (s *Service) RetireNode(ctx context.Context, name string) (*api.RetiredNode, error) {
	qs := s.Quarantine
	if qs == nil || !qs.SharedStore || qs.Commands == nil {
		return nil, fmt.Errorf("%w: without cluster.postgres there is no other node", api.ErrBadRequest)
	}
	if name == qs.Node {
		return nil, fmt.Errorf("%w: %s is this node; retire it from another node once it is stopped", api.ErrConflict, name)
	}
	l, err := s.ListNodes(ctx)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(l.Nodes, func(n api.Node) bool { return n.Name == name })
	if i < 0 {
		return nil, fmt.Errorf("%w: no node %q has recorded a heartbeat", store.ErrNotFound, name)
	}
	if l.Nodes[i].State != api.NodeDown {
		return nil, fmt.Errorf("%w: node %s is up (heartbeat %s ago); stop it first", api.ErrConflict, name, s.now().Sub(l.Nodes[i].SeenAt).Round(time.Second))
	}
	actor := api.ActorFrom(ctx).Name
	holds, commands, err := qs.Commands.RetireNode(ctx, name, actor, s.now())
	if err != nil {
		return nil, err
	}
	s.audit(ctx, actor, store.AuditNodeRetire, "node:"+name, fmt.Sprintf("%d held messages marked deleted, %d waiting commands failed", holds, commands))
	s.Log.Info("cluster: node retired", "node", name, "holds", holds, "commands", commands, "actor", actor)
	return &api.RetiredNode{Node: name, Holds: holds, Commands: commands}, nil
}

// ListNodes implements api.Methods: every node that recorded a heartbeat
// in the shared records, up or down by NodeDownAfter (the age measured by
// the database's clock), with the commands waiting for it. A node without
// shared records lists itself alone, up.
func (s *Service) ListNodes(ctx context.Context) (*api.NodeList, error) {
	l := &api.NodeList{Nodes: []api.Node{}, DownAfterSeconds: int(NodeDownAfter / time.Second)}
	qs := s.Quarantine
	if qs == nil || !qs.SharedStore || qs.Commands == nil {
		l.Nodes = append(l.Nodes, api.Node{Name: s.Node, State: api.NodeUp, SeenAt: s.now().UTC(), Version: s.Status0.Version, Self: true})
		return l, nil
	}
	l.Shared = true
	ns, err := qs.Commands.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	for _, n := range ns {
		state := api.NodeUp
		if n.Age > NodeDownAfter {
			state = api.NodeDown
		}
		l.Nodes = append(l.Nodes, api.Node{Name: n.Node, State: state, SeenAt: n.SeenAt, Version: n.Version, Self: n.Node == qs.Node, PendingCommands: n.Pending})
	}
	return l, nil
}
