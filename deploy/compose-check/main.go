// compose-check validates a docker-compose file with compose-go, the Compose specification's reference
// loader (the one `docker compose` itself uses), and prints the resolved project as JSON for further checks.
// Usage: go run . ../../docker-compose.yml [profile...]
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: compose-check FILE [PROFILE...]")
		os.Exit(2)
	}
	opts, err := cli.NewProjectOptions(
		[]string{os.Args[1]},
		cli.WithOsEnv,
		cli.WithName("servicetrail"),
		cli.WithProfiles(os.Args[2:]),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, "invalid:", err)
		os.Exit(1)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "invalid:", err)
		os.Exit(1)
	}
	out, err := project.MarshalJSON()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot render:", err)
		os.Exit(1)
	}
	fmt.Println(string(out))
}
