package cli

import (
	"fmt"
	"runtime/debug"

	"github.com/baton-dev/baton/internal/service"
	"github.com/spf13/cobra"
)

// version returns baton's version as the build recorded it.
func version() string {
	info, ok := debug.ReadBuildInfo()
	return versionOf(info, ok)
}

// versionOf formats a build's module version and VCS commit: "0.1.0,
// commit 4f2c…" with " (modified)" for a build from a modified tree.
// Without a module version (a development build) it is service.Version;
// without VCS information the commit is "unknown".
func versionOf(info *debug.BuildInfo, ok bool) string {
	v, commit, modified := service.Version, "unknown", false
	if ok && info != nil {
		if info.Main.Version != "" && info.Main.Version != "(devel)" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	s := fmt.Sprintf("%s, commit %s", v, commit)
	if modified {
		s += " (modified)"
	}
	return s
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print baton's version and commit",
		Long: `Print baton's module version and the VCS commit it was built from, marked
(modified) for a build from a tree with uncommitted changes. 'baton --version'
prints the same.`,
		Example: "  baton version",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "baton version %s\n", cmd.Root().Version)
			return err
		},
	}
}
