package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/daemon"
	"github.com/mailbrake/mailbrake/internal/gctune"
	"github.com/mailbrake/mailbrake/internal/sdnotify"
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
			// The collector's target follows the live heap: 4x headroom
			// while it is a few MiB (little GC work on the request path),
			// 30 % of the live heap when a million accounts' state is kept
			// (memory bounds in docs/performance.md). GOGC in the
			// environment still wins.
			gcCtx, stopGC := context.WithCancel(cmd.Context())
			defer stopGC()
			go gctune.Run(gcCtx, gctune.Options{}, os.Getenv("GOGC") != "")
			d, err := daemon.Build(c, log, Version)
			if err != nil {
				// The same problems `config check` reports, exit 2.
				return &exitError{code: 2, err: fmt.Errorf("%s: %d error(s):\n  %s", nameOf(g.configFile), strings.Count(err.Error(), "\n")+1, strings.ReplaceAll(err.Error(), "\n", "\n  "))}
			}
			// Under systemd (Type=notify) the unit is started once every
			// listener is open, and stopping is announced at once.
			ctx := cmd.Context()
			go func() {
				select {
				case <-d.Ready:
					if _, err := sdnotify.Notify(sdnotify.Ready + "\n" + sdnotify.Status("serving")); err != nil {
						log.Warn("telling systemd the daemon is ready failed", "err", err)
					}
				case <-ctx.Done():
				}
				<-ctx.Done()
				sdnotify.Notify(sdnotify.Stopping)
			}()
			return d.Run(ctx)
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
