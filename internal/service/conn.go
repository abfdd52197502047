package service

import (
	"flag"
	"fmt"

	"github.com/nats-io/nats.go"
)

// ConnFlags are the NATS client options every service and every baton
// command takes, named as the nats CLI names them, with the same
// environment variables. A password in --server's URL works too; it never
// appears in logs or errors.
type ConnFlags struct {
	Server   string // --server, NATS_URL
	Creds    string // --creds, NATS_CREDS: a .creds file (JWT and nkey seed)
	NKey     string // --nkey, NATS_NKEY: an nkey seed file
	User     string // --user, NATS_USER
	Password string // --password, NATS_PASSWORD
	TLSCA    string // --tls-ca, NATS_CA
	TLSCert  string // --tls-cert, NATS_CERT
	TLSKey   string // --tls-key, NATS_KEY
	TLSFirst bool   // --tls-first: TLS before the server's INFO (handshake first)
}

// ConnFlag describes one string flag of ConnFlags, for whichever flag
// package registers it.
type ConnFlag struct {
	Name, Env, Usage string
	Value            *string
}

// Flags lists the string flags; TLSFirst is the one boolean.
func (f *ConnFlags) Flags() []ConnFlag {
	return []ConnFlag{
		{"server", "NATS_URL", "NATS server URL(s), comma separated", &f.Server},
		{"creds", "NATS_CREDS", "user credentials file (.creds)", &f.Creds},
		{"nkey", "NATS_NKEY", "nkey seed file", &f.NKey},
		{"user", "NATS_USER", "user name", &f.User},
		{"password", "NATS_PASSWORD", "password", &f.Password},
		{"tls-ca", "NATS_CA", "CA certificate file that verifies the server", &f.TLSCA},
		{"tls-cert", "NATS_CERT", "client certificate file (mutual TLS)", &f.TLSCert},
		{"tls-key", "NATS_KEY", "client key file (mutual TLS)", &f.TLSKey},
	}
}

// TLSFirstUsage is the usage text of --tls-first.
const TLSFirstUsage = "start TLS before the server's greeting (servers with handshake_first)"

// register adds the flags to a standard library flag set.
func (f *ConnFlags) register(fs *flag.FlagSet) {
	for _, cf := range f.Flags() {
		def := ""
		if cf.Name == "server" {
			def = DefaultURL
		}
		fs.StringVar(cf.Value, cf.Name, env(cf.Env, def), cf.Usage+" (env "+cf.Env+")")
	}
	fs.BoolVar(&f.TLSFirst, "tls-first", false, TLSFirstUsage)
}

// Options turns the flags into nats.go options.
func (f *ConnFlags) Options() ([]nats.Option, error) {
	var opts []nats.Option
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
	if f.User != "" || f.Password != "" {
		opts = append(opts, nats.UserInfo(f.User, f.Password))
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
