package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/mailbrake/mailbrake/internal/replay"
)

func replayCmd(g *globals) *cobra.Command {
	var input, output string
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
			if fi, err := in.Stat(); err == nil && isTerminal(os.Stderr) && output != "" && output != "-" {
				total := fi.Size()
				progress = func(line int, read int64) {
					if line%1000 == 0 && total > 0 {
						pct := float64(read) * 100 / float64(total)
						bar := int(pct / 5)
						fmt.Fprintf(os.Stderr, "\r[%-20s] %5.1f%% %d lines", repeat('#', bar), pct, line)
					}
				}
			}
			sum, err := replay.Run(cmd.Context(), c, in, out, progress)
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
