// Command lanchat is a serverless chat for local networks. See the README
// for its use; the commands themselves live in package cli.
package main

import (
	"os"

	"lanchat/cmd/lanchat/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
