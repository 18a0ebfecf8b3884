// Command mailbrake holds outbound mail from compromised accounts for
// review: a Postfix policy delegation server and milter sharing one
// decision engine. See README.md.
package main

import (
	"os"

	"github.com/mailbrake/mailbrake/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
