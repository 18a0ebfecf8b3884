package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/mailbrake/mailbrake/internal/config"
)

// Version, Commit and BuildDate are set at build time with -ldflags "-X
// …/internal/cli.Version=…" and so on (make build: `git describe --tags`,
// the commit and the commit's UTC time, so one commit builds one binary).
var (
	Version   = "dev"
	Commit    = "" // -X …/internal/cli.Commit=…; else Go's VCS stamp, when the build has one
	BuildDate = ""
)

// SystemConfig is the configuration the Debian package installs; used
// when no --config or MAILBRAKE_CONFIG names one.
var SystemConfig = "/etc/mailbrake/mailbrake.yaml"

// versionLine is what `mailbrake version` prints: the version, the commit
// it was built from (with "+changes" when the tree was modified), the
// build date and the Go version.
func versionLine() string {
	commit, modified := "unknown", false
	goVersion := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if len(commit) > 12 {
		commit = commit[:12]
	}
	if modified {
		commit += "+changes"
	}
	if Commit != "" {
		commit = Commit
	}
	date := BuildDate
	if date == "" {
		date = "unknown"
	}
	return fmt.Sprintf("mailbrake %s (commit %s, built %s, %s)", Version, commit, date, goVersion)
}

// exitError carries a process exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

// Main runs the CLI and returns the process exit code: 0 success, 1 error,
// 2 invalid configuration or usage.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	stdout, stderr = &safeWriter{w: stdout}, &safeWriter{w: stderr}
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintln(stderr, "mailbrake:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "mailbrake:", err)
	return 1
}

type globals struct {
	configFile string
	dataDir    string
	socket     string
}

// Command returns the command tree (for generating the man pages).
func Command() *cobra.Command { return newRoot(os.Stdout, os.Stderr) }

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "mailbrake",
		Short:         "Hold outbound mail from compromised accounts for review (Postfix policy server and milter)",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
		// The package's configuration is found without flags: a CLI
		// call on the server reaches the daemon the package runs.
		PersistentPreRun: func(*cobra.Command, []string) {
			if g.configFile == "" {
				if _, err := os.Stat(SystemConfig); err == nil {
					g.configFile = SystemConfig
				}
			}
		},
	}
	pf := root.PersistentFlags()
	pf.StringVarP(&g.configFile, "config", "c", os.Getenv("MAILBRAKE_CONFIG"), "config file (env MAILBRAKE_CONFIG; default "+SystemConfig+" when it exists, else the embedded defaults)")
	pf.StringVar(&g.dataDir, "data-dir", os.Getenv("MAILBRAKE_DATA_DIR"), "data directory (env MAILBRAKE_DATA_DIR; default from config: ./mailbrake-data)")
	pf.StringVar(&g.socket, "socket", os.Getenv("MAILBRAKE_SOCKET"), "admin socket of the running daemon (env MAILBRAKE_SOCKET; default <data-dir>/admin.sock)")
	root.AddCommand(
		serveCmd(g),
		configCmd(g),
		quarantineCmd(g),
		accountCmd(g),
		incidentCmd(g),
		nodesCmd(g),
		userCmd(g),
		tokenCmd(g),
		replayCmd(g),
		learnCmd(g),
		reloadCmd(g),
		backupCmd(g),
		postfixConfigCmd(g),
		zimbraConfigCmd(g),
		loadgenCmd(),
		&cobra.Command{
			Use:   "version",
			Short: "Print the version",
			Args:  cobra.NoArgs,
			Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), versionLine()) },
		},
	)
	refuseUnknown(root)
	return root
}

// refuseUnknown makes every group command (one with subcommands) fail on
// a word that is none of them, as the root does, instead of printing its
// help and exiting 0: "mailbrake user delete admin" (the command is
// "remove") must not look done.
func refuseUnknown(c *cobra.Command) {
	for _, sub := range c.Commands() {
		refuseUnknown(sub)
	}
	if !c.HasParent() || !c.HasSubCommands() || c.Run != nil || c.RunE != nil {
		return
	}
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		return fmt.Errorf("unknown command %q for %q; see %s --help", args[0], cmd.CommandPath(), cmd.CommandPath())
	}
}

// loadConfig reads the configuration and applies the global overrides.
func (g *globals) loadConfig() (*config.Config, error) {
	c, err := CheckConfig(g.configFile)
	if err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	if g.dataDir != "" {
		c.DataDir = g.dataDir
	}
	return c, nil
}

// socketPath finds the admin socket without requiring a valid config when
// --socket or --data-dir is given.
func (g *globals) socketPath() (string, error) {
	if g.socket != "" {
		return g.socket, nil
	}
	c, err := g.loadConfig()
	if err != nil {
		return "", err
	}
	return AdminSocket(c), nil
}

// AdminSocket returns the admin socket path for a configuration.
func AdminSocket(c *config.Config) string {
	if c.Admin.Socket != "" {
		return c.Admin.Socket
	}
	return filepath.Join(c.DataDir, "admin.sock")
}
