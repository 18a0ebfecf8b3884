package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailbrake/mailbrake/internal/replay"
)

func replayCmd(g *globals) *cobra.Command {
	var input, output, report string
	var postfixLog bool
	var year int
	cmd := &cobra.Command{
		Use:   "replay --input FILE [--output FILE] [--config FILE]",
		Short: "Run recorded submissions (JSON Lines) through the engine, with no MTA side effects",
		Long: `Replay runs recorded submissions through the same engine the daemon uses,
with the clock driven by each event's timestamp. Nothing touches Postfix:
holds are reported, account state changes apply to an in-memory view. Input:
one JSON object per line with at least time, account and recipients; output:
one JSON object per input line, in order. A summary goes to stderr.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if input == "" {
				return &exitError{code: 2, err: fmt.Errorf("--input is required")}
			}
			c, err := g.loadConfig()
			if err != nil {
				return err
			}
			in, err := os.Open(input)
			if err != nil {
				return err
			}
			defer in.Close()
			var src io.Reader = in
			if postfixLog {
				// Streamed: the log is read as the replay goes, in bounded
				// memory.
				pr, pw := io.Pipe()
				defer pr.Close()
				go func() {
					enc := json.NewEncoder(pw)
					st, err := replay.ScanPostfixLog(in, year, func(r replay.Record) error { return enc.Encode(r) })
					if err == nil {
						err = reportLogStats(cmd.ErrOrStderr(), input, st)
					}
					pw.CloseWithError(err)
				}()
				src = pr
			}
			var out io.Writer = cmd.OutOrStdout()
			if output != "" && output != "-" {
				f, err := os.Create(output)
				if err != nil {
					return err
				}
				defer f.Close()
				out = f
			}
			var progress func(int, int64)
			if fi, err := in.Stat(); err == nil && !postfixLog && isTerminal(os.Stderr) && output != "" && output != "-" {
				total := fi.Size()
				progress = func(line int, read int64) {
					if line%1000 == 0 && total > 0 {
						pct := float64(read) * 100 / float64(total)
						bar := int(pct / 5)
						fmt.Fprintf(os.Stderr, "\r[%-20s] %5.1f%% %d lines", repeat('#', bar), pct, line)
					}
				}
			}
			var rep *replay.Report
			if report != "" {
				rep = replay.NewReport()
				out = io.MultiWriter(out, rep)
			}
			sum, err := replay.Run(cmd.Context(), c, src, out, progress)
			if err == nil && rep != nil {
				f, ferr := os.Create(report)
				if ferr != nil {
					return ferr
				}
				defer f.Close()
				if err := rep.WriteHTML(f, sum); err != nil {
					return err
				}
			}
			if progress != nil {
				fmt.Fprintln(os.Stderr)
			}
			if sum != nil {
				sum.WriteText(cmd.ErrOrStderr())
			}
			return err
		},
	}
	cmd.Flags().StringVar(&input, "input", "", "JSON Lines file of submissions")
	cmd.Flags().StringVar(&output, "output", "", "output file (default stdout)")
	cmd.Flags().StringVar(&report, "report", "", "also write a self-contained HTML report (per-account sending timelines with holds and state changes)")
	cmd.Flags().BoolVar(&postfixLog, "postfix-log", false, "the input is a Postfix mail log (sasl_username, from, nrcpt, to=) instead of JSON Lines")
	cmd.Flags().IntVar(&year, "year", time.Now().Year(), "year of syslog timestamps in a Postfix log (they carry none)")
	return cmd
}

func repeat(b byte, n int) string {
	if n < 0 {
		n = 0
	}
	out := make([]byte, n)
	for i := range out {
		out[i] = b
	}
	return string(out)
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// reportLogStats says what a Postfix log gave, and fails when it gave no
// message at all (a wrong file, or a log without SASL logins or logged
// account headers).
func reportLogStats(w io.Writer, name string, st replay.LogStats) error {
	if st.Bad > 0 {
		fmt.Fprintf(w, "mailbrake: %s: %d unreadable Postfix log lines skipped\n", name, st.Bad)
	}
	if st.Unknown > 0 {
		fmt.Fprintf(w, "mailbrake: %s: %d messages without an account skipped (relayed mail names its account only when Postfix logs the header: header_checks /^X-Authenticated-User:/ INFO)\n", name, st.Unknown)
	}
	if st.Abandoned > 0 {
		fmt.Fprintf(w, "mailbrake: %s: %d messages never logged as removed were given up early\n", name, st.Abandoned)
	}
	if st.Messages == 0 {
		return &exitError{code: 1, err: fmt.Errorf("%s: no outbound message with an account in %d lines: not a Postfix mail log, or no SASL logins and no logged X-Authenticated-User headers", name, st.Lines)}
	}
	return nil
}
