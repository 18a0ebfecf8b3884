package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailbrake/mailbrake/internal/daemon"
	"github.com/mailbrake/mailbrake/internal/replay"
)

func learnCmd(g *globals) *cobra.Command {
	var postfixLog bool
	var year int
	cmd := &cobra.Command{
		Use:   "learn [--postfix-log] FILE...",
		Short: "Seed a new installation's knowledge of its senders from existing mail logs (before enforcing)",
		Long: `learn runs recorded mail (Postfix mail logs with --postfix-log, plain or
.gz, or replay's JSON Lines) through the detectors and writes what they
learned — whom each account writes to, its normal volume and clients,
where its mail comes from — into the data directory, where serve picks it
up. Run it once, with mailbrake stopped, on the last weeks of logs before
the first start: the senders are then known on day one, and a log that
covers novelty.learning (7 days) ends the learning period at once.
Running it again adds to what is there. Nothing touches Postfix.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			c, err := g.loadConfig()
			if err != nil {
				return err
			}
			pr, pw := io.Pipe()
			stats := make(chan error, 1)
			go func() {
				enc := json.NewEncoder(pw)
				var err error
				for _, name := range files {
					if err = feed(cmd.ErrOrStderr(), name, postfixLog, year, enc, pw); err != nil {
						break
					}
				}
				pw.CloseWithError(err)
				stats <- err
			}()
			res, err := daemon.Learn(cmd.Context(), c, pr, nil)
			pr.CloseWithError(errors.New("learn stopped"))
			ferr := <-stats
			switch {
			case errors.Is(err, daemon.ErrRunning):
				return &exitError{code: 1, err: err}
			case ferr != nil:
				return ferr // the input's own error says more than the reader's
			case err != nil:
				return err
			}
			res.Summary.WriteText(cmd.ErrOrStderr())
			if res.Summary.Messages == 0 {
				return &exitError{code: 1, err: errors.New("no outbound message in the input: nothing learned")}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "learned from %d messages: %d account snapshots written to %s\n", res.Summary.Messages, res.Snapshots, c.DataDir)
			return nil
		},
	}
	cmd.Flags().BoolVar(&postfixLog, "postfix-log", false, "the files are Postfix mail logs (plain or .gz) instead of JSON Lines")
	cmd.Flags().IntVar(&year, "year", time.Now().Year(), "year of syslog timestamps in a Postfix log (they carry none)")
	return cmd
}

// feed writes one input file to w as replay JSON Lines.
func feed(stderr io.Writer, name string, postfixLog bool, year int, enc *json.Encoder, w io.Writer) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	if !postfixLog {
		_, err := io.Copy(w, f)
		return err
	}
	st, err := replay.ScanPostfixLog(f, year, func(r replay.Record) error { return enc.Encode(r) })
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return reportLogStats(stderr, name, st)
}
