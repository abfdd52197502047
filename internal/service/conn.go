package service

import (
	"flag"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/synadia-io/orbit.go/natscontext"
)

// ConnFlags are the NATS client options every service and every baton
// command takes, named as the nats CLI names them, with the same
// environment variables. A password in --server's URL works too; it never
// appears in logs or errors.
//
// Context names a nats CLI context, whose server URL, credentials (user and
// password, token, creds or nkey), TLS files, tls_first and inbox prefix
// apply where no flag gives their own: as in the nats CLI, each flag given
// (or its variable set) replaces the context's value. Giving --creds,
// --nkey, --user or --password also drops the context's credentials of the
// other kinds, so that they are not sent along; --tls-first can only turn
// tls_first on. Without Context no context is read, not even the one
// `nats context select` chose.
type ConnFlags struct {
	Context  string // --context, NATS_CONTEXT: a context's name or the path of its JSON file
	Server   string // --server, NATS_URL; "": the context's URL, else DefaultURL
	Creds    string // --creds, NATS_CREDS: a .creds file (JWT and nkey seed)
	NKey     string // --nkey, NATS_NKEY: an nkey seed file
	User     string // --user, NATS_USER
	Password string // --password, NATS_PASSWORD
	TLSCA    string // --tls-ca, NATS_CA
	TLSCert  string // --tls-cert, NATS_CERT
	TLSKey   string // --tls-key, NATS_KEY
	TLSFirst bool   // --tls-first: TLS before the server's INFO (handshake first)
	// --inbox-prefix, NATS_INBOX_PREFIX: the prefix of this connection's
	// reply subjects, for servers that confine each user to its own
	// (baton's roles: "_INBOX_<role>").
	InboxPrefix string
}

// ConnFlag describes one string flag of ConnFlags, for whichever flag
// package registers it. Each defaults to its environment variable.
type ConnFlag struct {
	Name, Env, Usage string
	Value            *string
	// Secret flags do not show their variable's value as the default in
	// help; Options reads the variable instead.
	Secret bool
}

// Flags lists the string flags; TLSFirst is the one boolean.
func (f *ConnFlags) Flags() []ConnFlag {
	return []ConnFlag{
		{"context", "NATS_CONTEXT", "nats CLI context (name or file): the server, credentials and TLS settings no other flag gives", &f.Context, false},
		{"server", "NATS_URL", "NATS server URL(s), comma separated; default the context's, else " + DefaultURL, &f.Server, false},
		{"creds", "NATS_CREDS", "user credentials file (.creds)", &f.Creds, false},
		{"nkey", "NATS_NKEY", "nkey seed file", &f.NKey, false},
		{"user", "NATS_USER", "user name", &f.User, false},
		{"password", "NATS_PASSWORD", "password", &f.Password, true},
		{"tls-ca", "NATS_CA", "CA certificate file that verifies the server", &f.TLSCA, false},
		{"tls-cert", "NATS_CERT", "client certificate file (mutual TLS)", &f.TLSCert, false},
		{"tls-key", "NATS_KEY", "client key file (mutual TLS)", &f.TLSKey, false},
		{"inbox-prefix", "NATS_INBOX_PREFIX", "prefix of reply subjects (a role's, e.g. _INBOX_submitter, where the server confines replies)", &f.InboxPrefix, false},
	}
}

// Default is the flag's default: its variable's value, except for a
// secret, which Options reads from the variable itself.
func (cf ConnFlag) Default() string {
	if cf.Secret {
		return ""
	}
	return env(cf.Env, "")
}

// TLSFirstUsage is the usage text of --tls-first.
const TLSFirstUsage = "start TLS before the server's greeting (servers with handshake_first)"

// register adds the flags to a standard library flag set.
func (f *ConnFlags) register(fs *flag.FlagSet) {
	for _, cf := range f.Flags() {
		fs.StringVar(cf.Value, cf.Name, cf.Default(), cf.Usage+" (env "+cf.Env+")")
	}
	fs.BoolVar(&f.TLSFirst, "tls-first", false, TLSFirstUsage)
}

// Options turns the flags into nats.go options. Applied after a context's
// options, as Connect does, each one replaces what the context set.
func (f *ConnFlags) Options() ([]nats.Option, error) {
	for _, cf := range f.Flags() {
		if cf.Secret && *cf.Value == "" {
			*cf.Value = env(cf.Env, "")
		}
	}
	var opts []nats.Option
	if f.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(f.InboxPrefix))
	}
	if f.Server != "" {
		servers := SplitList(f.Server)
		opts = append(opts, func(o *nats.Options) error {
			o.Servers = servers
			return nil
		})
	}
	if f.Creds != "" || f.NKey != "" || f.User != "" || f.Password != "" {
		opts = append(opts, f.replaceCredentials)
	}
	switch {
	case f.Creds != "" && f.NKey != "":
		return nil, fmt.Errorf("--creds and --nkey: give one")
	case f.Creds != "":
		opts = append(opts, nats.UserCredentials(f.Creds))
	case f.NKey != "":
		o, err := nats.NkeyOptionFromSeed(f.NKey)
		if err != nil {
			return nil, fmt.Errorf("--nkey: %w", err)
		}
		opts = append(opts, o)
	}
	if f.TLSCA != "" {
		opts = append(opts, nats.RootCAs(f.TLSCA))
	}
	if (f.TLSCert == "") != (f.TLSKey == "") {
		return nil, fmt.Errorf("--tls-cert and --tls-key go together")
	}
	if f.TLSCert != "" {
		opts = append(opts, nats.ClientCert(f.TLSCert, f.TLSKey))
	}
	if f.TLSFirst {
		opts = append(opts, nats.TLSHandshakeFirst())
	}
	return opts, nil
}

// replaceCredentials puts the credentials given in place of a context's:
// --creds or --nkey replaces all of them; --user and --password each
// replace their own half of the context's user and password and drop its
// token, creds and nkey. Without a context there is nothing to replace.
func (f *ConnFlags) replaceCredentials(o *nats.Options) error {
	o.Token, o.TokenHandler, o.UserJWT, o.Nkey, o.SignatureCB = "", nil, nil, "", nil
	if f.Creds != "" || f.NKey != "" {
		o.User, o.Password = "", ""
	}
	if f.User != "" {
		o.User = f.User
	}
	if f.Password != "" {
		o.Password = f.Password
	}
	return nil
}

// contextSettings is what a context set, as the first option after the
// context's own sees it.
type contextSettings struct {
	read    bool     // the context was read and its options applied
	servers []string // its URLs (empty: nats.go's default, DefaultURL)
	secrets []string // its password and token
}

// option records the settings; it must come right after the context's
// options.
func (s *contextSettings) option(o *nats.Options) error {
	s.read, s.servers = true, o.Servers
	for _, v := range []string{o.Password, o.Token} {
		if v != "" {
			s.secrets = append(s.secrets, v)
		}
	}
	return nil
}

// dial connects with the context's options, if there is a context, then
// opts; without one to DefaultURL unless opts say otherwise.
func (f *ConnFlags) dial(opts []nats.Option) (*nats.Conn, error) {
	if f.Context == "" {
		return nats.Connect(DefaultURL, opts...)
	}
	nc, _, err := natscontext.Connect(f.Context, opts...)
	return nc, err
}

// servers is the server list a connection goes to, for messages.
func (f *ConnFlags) servers(set *contextSettings) string {
	switch {
	case f.Server != "":
		return f.Server
	case len(set.servers) > 0:
		return strings.Join(set.servers, ",")
	}
	return DefaultURL
}
