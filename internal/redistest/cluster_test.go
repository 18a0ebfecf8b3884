package redistest

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestCluster: the cluster serves keys of every slot through a cluster
// client, from any node as seed.
func TestCluster(t *testing.T) {
	c := NewCluster(t, 3)
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()[1:2], Password: c.Password})
	defer cc.Close()
	ctx := context.Background()
	for _, k := range []string{"a", "b", "c", "{x}1", "{x}2", "zz"} {
		if err := cc.Set(ctx, k, k, 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
	}
	var masters atomic.Int32
	if err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error { masters.Add(1); return nil }); err != nil || masters.Load() != 3 {
		t.Fatalf("%d masters, %v", masters.Load(), err)
	}
}
