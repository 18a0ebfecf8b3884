package ops

import (
	"context"
	"time"

	"github.com/mailbrake/mailbrake/internal/api"
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
