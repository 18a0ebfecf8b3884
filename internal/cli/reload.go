package cli

import (
	"fmt"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/mailbrake/mailbrake/internal/daemon"
)

func reloadCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "reload",
		Short: "Check the configuration and make the running daemon re-read it (SIGHUP)",
		Long: `Checks the configuration as the daemon will (the same checks as config
check), then sends the running daemon SIGHUP. It applies the rules,
engine.on_error, engine.shadow, the account score thresholds, the
playbooks and log.level while mail flows, and logs which changed keys need
a restart (listeners, the store, detectors' parameters, connectors,
notification). A configuration with errors is not sent: exit 2, and the
daemon keeps the one it runs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.loadConfig()
			if err != nil {
				return err
			}
			if errs := daemon.Check(c); len(errs) > 0 {
				return &exitError{code: 2, err: fmt.Errorf("%s: %d error(s); not reloaded:\n  %v", nameOf(g.configFile), len(errs), errs)}
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			st, err := cl.Status(cmd.Context())
			if err != nil {
				return err
			}
			if st.PID <= 0 {
				return fmt.Errorf("the daemon (version %s) does not say its process id; send it SIGHUP yourself", st.Version)
			}
			if err := syscall.Kill(st.PID, syscall.SIGHUP); err != nil {
				return fmt.Errorf("signalling the daemon (pid %d): %w", st.PID, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: OK; the daemon (pid %d) is re-reading it; its log says what was applied and what needs a restart\n", nameOf(g.configFile), st.PID)
			return nil
		},
	}
}
