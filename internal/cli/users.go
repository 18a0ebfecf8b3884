package cli

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/mailbrake/mailbrake/internal/api"
)

// readPassword reads a new password: from standard input with
// --password-stdin (one line), else from the terminal twice without echo.
// A password is never taken from the command line, where ps shows it.
func readPassword(cmd *cobra.Command, fromStdin bool) (string, error) {
	if fromStdin {
		line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
		if err != nil && err != io.EOF {
			return "", err
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", &exitError{code: 2, err: fmt.Errorf("no terminal to ask for the password: use --password-stdin")}
	}
	fmt.Fprint(cmd.ErrOrStderr(), "New password: ")
	a, err := term.ReadPassword(fd)
	fmt.Fprintln(cmd.ErrOrStderr())
	if err != nil {
		return "", err
	}
	fmt.Fprint(cmd.ErrOrStderr(), "Again: ")
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(cmd.ErrOrStderr())
	if err != nil {
		return "", err
	}
	if string(a) != string(b) {
		return "", &exitError{code: 2, err: fmt.Errorf("the passwords differ")}
	}
	return string(a), nil
}

func userCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Users of the web UI and REST API: admin, helpdesk or viewer"}
	var role string
	var stdin bool
	add := &cobra.Command{
		Use:   "add NAME --role admin|helpdesk|viewer [--password-stdin]",
		Short: "Add a user (the password is asked for, or read from standard input)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if role == "" {
				return &exitError{code: 2, err: fmt.Errorf("--role is required: admin, helpdesk or viewer")}
			}
			pw, err := readPassword(cmd, stdin)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			u, err := c.PutUser(cmd.Context(), api.PutUserRequest{Name: args[0], Role: role, Password: pw})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "user %s (%s) saved\n", u.Name, u.Role)
			return nil
		},
	}
	add.Flags().StringVar(&role, "role", "", "admin, helpdesk or viewer")
	add.Flags().BoolVar(&stdin, "password-stdin", false, "read the password from standard input")

	var pstdin bool
	passwd := &cobra.Command{
		Use:   "passwd NAME [--password-stdin]",
		Short: "Set a user's password (ends the user's sessions)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, err := readPassword(cmd, pstdin)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if _, err := c.PutUser(cmd.Context(), api.PutUserRequest{Name: args[0], Password: pw}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "password of %s changed\n", args[0])
			return nil
		},
	}
	passwd.Flags().BoolVar(&pstdin, "password-stdin", false, "read the password from standard input")

	remove := &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a user (ends the user's sessions)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.RemoveUser(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "user %s removed\n", args[0])
			return nil
		},
	}
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List users",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			us, err := c.ListUsers(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), us)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tROLE\tCHANGED")
			for _, u := range us {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", u.Name, u.Role, u.Updated.Local().Format(time.DateTime))
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "JSON output")
	cmd.AddCommand(add, passwd, remove, list)
	return cmd
}

func tokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "API tokens for automation (Authorization: Bearer …)"}
	var role string
	var ttl time.Duration
	create := &cobra.Command{
		Use:   "create NAME --role admin|helpdesk|viewer [--ttl 720h]",
		Short: "Create an API token; its secret is printed once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			t, err := c.CreateToken(cmd.Context(), api.CreateTokenRequest{Name: args[0], Role: role, TTL: ttl})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "token %s (%s) created; the secret below is shown only now:\n", t.ID, t.Role)
			fmt.Fprintln(cmd.OutOrStdout(), t.Secret)
			return nil
		},
	}
	create.Flags().StringVar(&role, "role", "viewer", "admin, helpdesk or viewer")
	create.Flags().DurationVar(&ttl, "ttl", 0, "lifetime (0: no expiry)")
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List API tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ts, err := c.ListTokens(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), ts)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tROLE\tCREATED\tEXPIRES\tLAST USED")
			for _, t := range ts {
				exp, used := "never", "never"
				if !t.Expires.IsZero() {
					exp = t.Expires.Local().Format(time.DateTime)
				}
				if !t.LastUsed.IsZero() {
					used = t.LastUsed.Local().Format(time.DateTime)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Role, t.Created.Local().Format(time.DateTime), exp, used)
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "JSON output")
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an API token",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.RevokeToken(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "token %s revoked\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}
