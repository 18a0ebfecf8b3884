package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func nodesCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "nodes",
		Short: "List the cluster's nodes: up or down by their last heartbeat, and the releases and deletes waiting for each",
		Long: `Lists every mailbrake node that recorded a heartbeat in the shared
PostgreSQL (cluster.postgres), by name, the node answering marked. A node
is down when its last heartbeat is older than three heartbeats (15 s);
releases and deletes of its holds asked on other nodes wait for it
(WAITING) and are carried out when it is back. Without cluster.postgres a
node knows no other and lists itself.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			l, err := c.ListNodes(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), l)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NODE\tSTATE\tLAST HEARTBEAT\tVERSION\tWAITING")
			for _, n := range l.Nodes {
				name := oneLine(n.Name)
				if n.Self {
					name += " (this node)"
				}
				ago := max(time.Since(n.SeenAt), 0).Round(time.Second)
				fmt.Fprintf(tw, "%s\t%s\t%s (%s ago)\t%s\t%d\n", name, n.State, n.SeenAt.Local().Format(time.DateTime), ago, oneLine(n.Version), n.PendingCommands)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if !l.Shared {
				fmt.Fprintln(cmd.OutOrStdout(), "No cluster.postgres: this node keeps its records alone and knows no other node.")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "JSON output")
	cmd.AddCommand(&cobra.Command{
		Use:   "retire NODE",
		Short: "Forget a node taken out of the cluster: its held messages are marked deleted and the commands waiting for it fail",
		Long: `Retires a node that is down for good (an MTA decommissioned): it no
longer shows on any node's list, its held messages are marked deleted (its
Postfix queue went with it), and the releases and deletes that waited for
it fail. A node that is up, or the node answering, is refused: stop it
first. Audited.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			r, err := c.RetireNode(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "node %s retired: %d held messages marked deleted, %d waiting commands failed\n", oneLine(r.Node), r.Holds, r.Commands)
			return nil
		},
	})
	return cmd
}
