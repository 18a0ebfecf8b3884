package cli

import (
	"github.com/spf13/cobra"

	"github.com/mailbrake/mailbrake/internal/loadgen"
)

func loadgenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "loadgen",
		Short: "Generate load against a policy server or milter on loopback and report throughput and latency",
	}
	var po loadgen.PolicyOptions
	var pout loadgen.Output
	pol := &cobra.Command{
		Use:   "policy",
		Short: "Policy delegation load: requests/s and p50/p99/p99.9 latency",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := pout.Check(); err != nil {
				return &exitError{code: 2, err: err}
			}
			r, err := loadgen.RunPolicy(cmd.Context(), po)
			if err != nil {
				return err
			}
			return pout.Write(cmd.OutOrStdout(), r)
		},
	}
	po.AddFlags(pol.Flags())
	pout.AddFlags(pol.Flags())

	var mo loadgen.MilterOptions
	var mout loadgen.Output
	mil := &cobra.Command{
		Use:   "milter",
		Short: "Milter load acting as Postfix: messages/s and latency per message",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := mout.Check(); err != nil {
				return &exitError{code: 2, err: err}
			}
			r, err := loadgen.RunMilter(cmd.Context(), mo)
			if err != nil {
				return err
			}
			return mout.Write(cmd.OutOrStdout(), r)
		},
	}
	mo.AddFlags(mil.Flags())
	mout.AddFlags(mil.Flags())
	cmd.AddCommand(pol, mil)
	return cmd
}
