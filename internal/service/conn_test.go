package service_test

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// TestConnFlags_Context connects through nats CLI contexts, saved by the
// nats CLI itself, to a server that requires authentication: the context
// gives what no flag gives, each flag given replaces the context's value,
// and no password (the flags', the context's, one in the context's URL)
// shows in an error. Not parallel: the contexts live where XDG_CONFIG_HOME
// says.
func TestConnFlags_Context(t *testing.T) {
	for _, cf := range (&service.ConnFlags{}).Flags() {
		t.Setenv(cf.Env, "") // unset: the flag package defaults read them
	}
	seedFile := func(name string) (file, pub string) {
		kp, err := nkeys.CreateUser()
		if err != nil {
			t.Fatal(err)
		}
		pub, _ = kp.PublicKey()
		seed, _ := kp.Seed()
		file = filepath.Join(t.TempDir(), name+".nk")
		if err := os.WriteFile(file, seed, 0o600); err != nil {
			t.Fatal(err)
		}
		return file, pub
	}
	admitted, pub := seedFile("admitted")
	stranger, _ := seedFile("stranger")
	srv := natstest.StartWithAuth(t, map[string]string{"alice": "s3cret"}, []string{pub})
	url := srv.ClientURL()
	secrets := []string{"s3cret", "ctx-guess", "url-pw"}
	natstest.SaveContexts(t, map[string][]string{
		"good":      {"--server", url, "--user", "alice", "--password", "s3cret"},
		"wrong-pw":  {"--server", url, "--user", "alice", "--password", "ctx-guess"},
		"elsewhere": {"--server", "nats://127.0.0.1:1", "--user", "alice", "--password", "s3cret"},
		"in-url":    {"--server", strings.Replace(url, "nats://", "nats://alice:url-pw@", 1)},
		"no-server": {"--server", "nats://alice:url-pw@127.0.0.1:1"},
		"stranger":  {"--server", url, "--nkey", stranger},
		"inbox":     {"--server", url, "--user", "alice", "--password", "s3cret", "--inbox-prefix", "_INBOX_alice"},
	})

	// What the flag packages give: no --server means the context's URL.
	t.Run("--context without --server", func(t *testing.T) {
		connect(t, flags(t, "--context", "good")).Close()
	})
	t.Run("NATS_CONTEXT", func(t *testing.T) {
		t.Setenv("NATS_CONTEXT", "good")
		connect(t, flags(t)).Close()
	})
	t.Run("--context replaces NATS_CONTEXT", func(t *testing.T) {
		t.Setenv("NATS_CONTEXT", "wrong-pw")
		connect(t, flags(t, "--context", "good")).Close()
	})

	for _, tc := range []struct {
		name  string
		flags service.ConnFlags
		ok    bool
	}{
		{name: "user and password replace the context's", flags: service.ConnFlags{Context: "wrong-pw", User: "alice", Password: "s3cret"}, ok: true},
		{name: "password alone replaces the context's, keeps its user", flags: service.ConnFlags{Context: "wrong-pw", Password: "s3cret"}, ok: true},
		{name: "server replaces the context's", flags: service.ConnFlags{Context: "elsewhere", Server: url}, ok: true},
		{name: "nkey replaces the context's user and password", flags: service.ConnFlags{Context: "wrong-pw", NKey: admitted}, ok: true},
		{name: "user and password drop the context's nkey", flags: service.ConnFlags{Context: "stranger", User: "alice", Password: "s3cret"}, ok: true},
		{name: "context path", flags: service.ConnFlags{Context: filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "nats", "context", "good.json")}, ok: true},
		{name: "the context's wrong password", flags: service.ConnFlags{Context: "wrong-pw"}},
		{name: "the context's wrong password in its URL", flags: service.ConnFlags{Context: "in-url"}},
		{name: "the context's unknown nkey", flags: service.ConnFlags{Context: "stranger"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := service.Common{ConnFlags: tc.flags}
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
			if !errors.Is(err, nats.ErrAuthorization) || !strings.Contains(err.Error(), "context "+tc.flags.Context) {
				t.Fatalf("error %v: want an authorization error naming the context", err)
			}
			noSecrets(t, err, secrets)
		})
	}

	t.Run("no server: the error does not show its URL's password", func(t *testing.T) {
		c := service.Common{ConnFlags: service.ConnFlags{Context: "no-server"}}
		_, err := c.Connect("test", nil)
		if !errors.Is(err, nats.ErrNoServers) || !strings.Contains(err.Error(), "@127.0.0.1:1 (context no-server)") {
			t.Fatalf("error %v: want nats.ErrNoServers naming the context and its server", err)
		}
		noSecrets(t, err, secrets)
	})

	t.Run("unknown context", func(t *testing.T) {
		c := service.Common{ConnFlags: service.ConnFlags{Context: "nope", User: "alice", Password: "s3cret"}}
		_, err := c.Connect("test", nil)
		if !errors.Is(err, service.ErrContext) || !strings.Contains(err.Error(), `"nope"`) {
			t.Fatalf("error %v: want ErrContext naming the context", err)
		}
		noSecrets(t, err, secrets)
	})

	t.Run("inbox prefix", func(t *testing.T) {
		nc := connect(t, service.Common{ConnFlags: service.ConnFlags{Context: "inbox"}})
		defer nc.Close()
		if inbox := nc.NewRespInbox(); !strings.HasPrefix(inbox, "_INBOX_alice.") {
			t.Fatalf("inbox %q, want the context's prefix _INBOX_alice.", inbox)
		}
		sub, err := nc.Subscribe("echo", func(m *nats.Msg) { _ = m.Respond(m.Data) })
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = sub.Unsubscribe() }()
		if m, err := nc.Request("echo", []byte("hi"), 10*time.Second); err != nil || string(m.Data) != "hi" {
			t.Fatalf("request through the prefixed inbox: %v", err)
		}
	})
}

// flags parses args as a service's command line.
func flags(tb testing.TB, args ...string) service.Common {
	tb.Helper()
	var c service.Common
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.Register(fs)
	if err := service.ParseFlags(fs, args, io.Discard); err != nil {
		tb.Fatal(err)
	}
	return c
}

// connect connects as c says, or fails the test.
func connect(tb testing.TB, c service.Common) *nats.Conn {
	tb.Helper()
	nc, err := c.Connect("test", nil)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	return nc
}

// noSecrets fails the test if err shows one of the secrets.
func noSecrets(tb testing.TB, err error, secrets []string) {
	tb.Helper()
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) {
			tb.Fatalf("error %q shows %q", err, s)
		}
	}
}
