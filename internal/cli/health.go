package cli

import (
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/baton-dev/baton/pkg/events"
	"github.com/spf13/cobra"
)

func newHealthCmd() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "health URL",
		Short: "Check a health endpoint (exit 0 healthy, 6 not): for container health checks",
		Long: `GET URL and exit 0 if it answers 2xx within --timeout, 6 otherwise. Every
baton service started with --http serves /healthz (200 while connected to
NATS) and /readyz (200 once it can work: a planner or aggregator replica
leads, the agent is registered; 503 with the reason before); nats-server
serves /healthz on its monitoring port. Images built FROM scratch have no
shell or curl: compose runs this instead.`,
		Example: `  baton health http://127.0.0.1:8080/readyz
  baton health http://127.0.0.1:8080/healthz
  baton health 'http://127.0.0.1:8222/healthz?js-enabled-only=true'`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			hc := &http.Client{Timeout: timeout}
			req, err := http.NewRequestWithContext(cmd.Context(), http.MethodGet, args[0], nil)
			if err != nil {
				return usagef("%v", err)
			}
			resp, err := hc.Do(req)
			if err != nil {
				return fmt.Errorf("%w: unhealthy: %v", events.ErrUnavailable, err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			if resp.StatusCode/100 != 2 {
				return fmt.Errorf("%w: unhealthy: %s: %s", events.ErrUnavailable, resp.Status, body)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "healthy: %s\n", body)
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Second, "how long to wait for the answer")
	return cmd
}
