package service_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/baton-dev/baton/internal/natstest"
	"github.com/baton-dev/baton/internal/service"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// TestConnFlags_Authenticate connects to a server that requires
// authentication with each kind of credential the flags take, and is
// refused without them or with wrong ones (never showing the password).
func TestConnFlags_Authenticate(t *testing.T) {
	t.Parallel()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	srv := natstest.StartWithAuth(t, map[string]string{"alice": "s3cret"}, []string{pub})
	for _, tc := range []struct {
		name  string
		flags service.ConnFlags
		ok    bool
	}{
		{name: "user and password", flags: service.ConnFlags{User: "alice", Password: "s3cret"}, ok: true},
		{name: "password in the URL", flags: service.ConnFlags{Server: strings.Replace(srv.ClientURL(), "nats://", "nats://alice:s3cret@", 1)}, ok: true},
		{name: "nkey seed file", flags: service.ConnFlags{NKey: seedFile}, ok: true},
		{name: "no credentials", flags: service.ConnFlags{}},
		{name: "wrong password", flags: service.ConnFlags{User: "alice", Password: "guess"}},
		{name: "wrong password in the URL", flags: service.ConnFlags{Server: strings.Replace(srv.ClientURL(), "nats://", "nats://alice:guess@", 1)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := service.Common{ConnFlags: tc.flags}
			if c.Server == "" {
				c.Server = srv.ClientURL()
			}
			nc, err := c.Connect("test", nil)
			if tc.ok {
				if err != nil {
					t.Fatalf("connect: %v", err)
				}
				nc.Close()
				return
			}
			if err == nil {
				nc.Close()
				t.Fatal("connected without valid credentials")
			}
			if !errors.Is(err, nats.ErrAuthorization) || strings.Contains(err.Error(), "guess") {
				t.Fatalf("error %v: want an authorization error without the password", err)
			}
		})
	}
}

func TestConnFlags_Options_Rejects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		flags service.ConnFlags
		says  string
	}{
		{"creds and nkey", service.ConnFlags{Creds: "a", NKey: "b"}, "give one"},
		{"cert without key", service.ConnFlags{TLSCert: "c"}, "go together"},
		{"key without cert", service.ConnFlags{TLSKey: "k"}, "go together"},
		{"missing nkey file", service.ConnFlags{NKey: "/nonexistent/seed"}, "--nkey"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := tc.flags.Options(); err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("error %v, want one saying %q", err, tc.says)
			}
		})
	}
}
