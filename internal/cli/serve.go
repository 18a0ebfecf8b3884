package cli

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/daemon"
)

func serveCmd(g *globals) *cobra.Command {
	var policyAddr, milterAddr, httpAddr, postfixDir string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the daemon (policy server, milter, admin socket, health and metrics)",
		Long: `Run the daemon in the foreground. Without --config it runs on the embedded
defaults: policy on 127.0.0.1:10041, milter on 127.0.0.1:10042, health and
metrics on http://127.0.0.1:10043, state in ./mailbrake-data.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.loadConfig()
			if err != nil {
				return err
			}
			if policyAddr != "" {
				c.Policy.Listen = policyAddr
			}
			if milterAddr != "" {
				c.Milter.Listen = milterAddr
			}
			if httpAddr != "" {
				c.HTTP.Listen = httpAddr
			}
			if postfixDir != "" {
				c.Postfix.ConfigDir = postfixDir
			}
			if errs := c.Validate(); len(errs) > 0 {
				return &exitError{code: 2, err: errs}
			}
			log := newLogger(cmd.ErrOrStderr(), c.Log)
			// The live heap is a few MiB (counters, in-flight messages), so
			// collecting at 4x instead of 2x costs little memory and halves
			// GC work on the per-request path; measured in
			// docs/performance.md. GOGC in the environment still wins.
			if os.Getenv("GOGC") == "" {
				debug.SetGCPercent(400)
			}
			d, err := daemon.Build(c, log, Version)
			if err != nil {
				// The same problems `config check` reports, exit 2.
				return &exitError{code: 2, err: fmt.Errorf("%s: %d error(s):\n  %s", nameOf(g.configFile), strings.Count(err.Error(), "\n")+1, strings.ReplaceAll(err.Error(), "\n", "\n  "))}
			}
			return d.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&policyAddr, "policy", "", "policy listen address (overrides policy.listen)")
	f.StringVar(&milterAddr, "milter", "", "milter listen address (overrides milter.listen)")
	f.StringVar(&httpAddr, "http", "", "HTTP listen address (overrides http.listen)")
	f.StringVar(&postfixDir, "postfix-config-dir", "", "Postfix config directory for postsuper/postqueue -c (overrides postfix.config_dir)")
	return cmd
}

func newLogger(w io.Writer, c config.LogConfig) *slog.Logger {
	if w == nil {
		w = os.Stderr
	}
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
