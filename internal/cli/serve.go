package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/daemon"
	"github.com/mailbrake/mailbrake/internal/gctune"
	"github.com/mailbrake/mailbrake/internal/logsink"
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
			// load reads the configuration with the command line's
			// overrides: at start and again at each SIGHUP.
			load := func() (*config.Config, error) {
				c, err := g.loadConfig()
				if err != nil {
					return nil, err
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
					return nil, &exitError{code: 2, err: errs}
				}
				return c, nil
			}
			c, err := load()
			if err != nil {
				return err
			}
			level := new(slog.LevelVar)
			// Lines reach stderr in batches (a write(2) per 10 ms, not per
			// line): under a spam run the daemon logs thousands of lines a
			// second. Everything is written before serve returns.
			sink := logsink.New(cmd.ErrOrStderr(), logsink.Options{})
			defer sink.Close()
			log := newLogger(sink, c.Log, level)
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
			// SIGHUP (systemctl reload, mailbrake reload) re-reads the
			// configuration and applies what can change while mail flows;
			// a configuration with errors changes nothing.
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go func() {
				for {
					select {
					case <-ctx.Done():
						return
					case <-hup:
					}
					sdnotify.Notify(sdnotify.Reloading)
					reload(log, level, g.configFile, load, d)
					sdnotify.Notify(sdnotify.Ready + "\n" + sdnotify.Status("serving"))
				}
			}()
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

// reload re-reads the configuration for serve's SIGHUP and applies it,
// logging what was applied, what needs a restart, or why nothing changed.
func reload(log *slog.Logger, level *slog.LevelVar, path string, load func() (*config.Config, error), d *daemon.Daemon) {
	c, err := load()
	if err == nil {
		var r daemon.Reloaded
		if r, err = d.Reload(c); err == nil {
			level.Set(c.Log.Level.Slog())
			log.Info("configuration reloaded", "file", nameOf(path), "applied", r.Applied, "needs_restart", r.Restart)
			return
		}
	}
	log.Error("configuration not reloaded; the running one stays", "file", nameOf(path), "err", strings.ReplaceAll(err.Error(), "\n", "; "))
}

func newLogger(w io.Writer, c config.LogConfig, level *slog.LevelVar) *slog.Logger {
	if w == nil {
		w = os.Stderr
	}
	if level == nil {
		level = new(slog.LevelVar)
	}
	level.Set(c.Level.Slog())
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == config.LogJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
