package web_test

import (
	"errors"
	"testing"

	"github.com/baton-dev/baton/internal/web"
)

func TestConfig_CheckExposure(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr      string
		dashboard bool
		auth      string
		exposed   bool
	}{
		{addr: "127.0.0.1:8080", dashboard: true},
		{addr: "[::1]:8080", dashboard: true},
		{addr: "localhost:8080", dashboard: true},
		{addr: "0.0.0.0:8080", dashboard: true, exposed: true},
		{addr: ":8080", dashboard: true, exposed: true},
		{addr: "10.1.2.3:8080", dashboard: true, exposed: true},
		{addr: "0.0.0.0:8080", dashboard: true, auth: "ops:pw"},
		{addr: "0.0.0.0:9090"}, // /metrics alone may be open
	} {
		err := web.Config{Dashboard: tc.dashboard, Auth: tc.auth}.CheckExposure(tc.addr)
		if errors.Is(err, web.ErrExposed) != tc.exposed {
			t.Errorf("%s dashboard %v auth %q: %v, exposed %v", tc.addr, tc.dashboard, tc.auth, err, tc.exposed)
		}
	}
}
