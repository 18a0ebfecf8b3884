package redistest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// cliBin is Debian's redis-cli (redis-tools, a dependency of
// redis-server).
const cliBin = "/usr/bin/redis-cli"

// Cluster is a private Redis Cluster: masters on free 127.0.0.1 ports
// sharing one password, the 16,384 slots split between them, no replicas.
type Cluster struct {
	Nodes    []*Instance
	Password string
}

// NewCluster starts a cluster of n masters (at least 3, as Redis Cluster
// requires) for t and waits until it serves every slot.
func NewCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("redistest: skipped in -short mode")
	}
	for _, bin := range []string{serverBin, cliBin} {
		if _, err := os.Stat(bin); err != nil {
			t.Skip("redistest: " + bin + " not installed; run scripts/install-test-deps.sh")
		}
	}
	b := make([]byte, 16)
	rand.Read(b)
	c := &Cluster{Password: hex.EncodeToString(b)}
	args := []string{"--no-auth-warning", "-a", c.Password, "--cluster", "create"}
	for range max(n, 3) {
		in := start(t, c.Password, []string{"cluster-enabled yes", "cluster-config-file nodes.conf", "cluster-node-timeout 2000",
			"masterauth " + c.Password})
		c.Nodes = append(c.Nodes, in)
		args = append(args, in.Addr)
	}
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cliBin, args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: creating the cluster: %v\n%s", err, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, in := range c.Nodes {
		for {
			host, port, _ := strings.Cut(in.Addr, ":")
			out, err := exec.Command(cliBin, "--no-auth-warning", "-a", c.Password, "-h", host, "-p", port, "cluster", "info").CombinedOutput()
			if err == nil && strings.Contains(string(out), "cluster_state:ok") && strings.Contains(string(out), "cluster_slots_ok:16384") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redistest: cluster node %s not ready: %v\n%s", in.Addr, err, out)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return c
}

// Addrs returns the nodes' addresses.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, in := range c.Nodes {
		out[i] = in.Addr
	}
	return out
}
