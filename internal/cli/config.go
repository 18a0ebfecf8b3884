package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/daemon"
	"github.com/mailbrake/mailbrake/internal/engine"
)

func configCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Print an example configuration or check one"}
	cmd.AddCommand(&cobra.Command{
		Use:   "example",
		Short: "Print the annotated default configuration",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return config.WriteExample(cmd.OutOrStdout())
		},
	}, &cobra.Command{
		Use:   "check [FILE]",
		Short: "Check a configuration file; lists every error with its key path and exits 2",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := g.configFile
			if len(args) == 1 {
				path = args[0]
			}
			c, err := CheckConfig(path)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			// What serve would refuse, found the way serve finds it:
			// provisioning everything without starting (daemon.Check).
			if g.dataDir != "" {
				c.DataDir = g.dataDir
			}
			if errs := daemon.Check(c); len(errs) > 0 {
				return &exitError{code: 2, err: fmt.Errorf("%s: %d error(s):\n  %s", nameOf(path), len(errs), strings.ReplaceAll(errs.Error(), "\n", "\n  "))}
			}
			name := path
			if name == "" {
				name = "embedded defaults"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: OK\n", name)
			for _, n := range config.Notes(c) {
				fmt.Fprintf(cmd.OutOrStdout(), "note: %s\n", n)
			}
			return nil
		},
	})
	return cmd
}

// CheckConfig loads a file and compiles its rules, returning every error.
func CheckConfig(path string) (*config.Config, error) {
	c, err := config.LoadFile(path, CompileRules)
	if err != nil {
		var errs config.Errors
		if errors.As(err, &errs) {
			return nil, fmt.Errorf("%s: %d error(s):\n  %s", nameOf(path), len(errs), strings.ReplaceAll(errs.Error(), "\n", "\n  "))
		}
		return nil, err
	}
	return c, nil
}

// CompileRules is the engine's rule check as a config.Checker.
func CompileRules(c *config.Config) config.Errors {
	_, errs := engine.Compile(c.Rules)
	return errs
}

func nameOf(path string) string {
	if path == "" {
		return "embedded defaults"
	}
	return path
}
