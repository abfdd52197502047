package auth

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nkeys"
)

// User is a role with its nkey.
type User struct {
	Role
	Public string // the nkey's public key, which the server configuration names
	Seed   []byte // the secret seed, written only to the role's own file
}

// NewUser makes a fresh nkey for role.
func NewUser(role Role) (User, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return User{}, fmt.Errorf("auth: new nkey: %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return User{}, fmt.Errorf("auth: new nkey: %w", err)
	}
	seed, err := kp.Seed()
	if err != nil {
		return User{}, fmt.Errorf("auth: new nkey: %w", err)
	}
	return User{Role: role, Public: pub, Seed: seed}, nil
}

// Authorization renders the users as a nats-server `authorization` block:
// one nkey user per role with its allow lists. Anything not allowed is
// refused by the server with a permissions violation.
func Authorization(users []User) string {
	var b strings.Builder
	b.WriteString("authorization {\n  users = [\n")
	for _, u := range users {
		fmt.Fprintf(&b, "    # %s\n    {\n      nkey: %q\n      permissions: {\n", u.Name, u.Public)
		fmt.Fprintf(&b, "        publish: { allow: %s }\n", list(u.Publish))
		fmt.Fprintf(&b, "        subscribe: { allow: %s }\n", list(u.Subscribe))
		if u.Responses {
			b.WriteString("        allow_responses: true\n")
		}
		b.WriteString("      }\n    }\n")
	}
	b.WriteString("  ]\n}\n")
	return b.String()
}

func list(subjects []string) string {
	q := make([]string, len(subjects))
	for i, s := range subjects {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// Files names what Write puts in a directory.
const (
	ConfFile  = "auth.conf"  // the authorization block, to include in a server configuration
	RolesFile = "roles.json" // each role's permissions and inbox prefix, for people and tools
)

// SeedFile is the file that holds a role's nkey seed.
func SeedFile(role string) string { return role + ".nk" }

// Write makes an nkey for each role and writes, into dir: the server's
// authorization block (ConfFile, to `include` from a nats-server
// configuration or pass to `baton up --auth`), each role's seed (readable
// by its owner only), and RolesFile. Existing seeds are kept, so running it
// again after adding an agent role changes no credential already handed
// out.
func Write(dir string, roles []Role) ([]User, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	users := make([]User, 0, len(roles))
	for _, r := range roles {
		u, err := loadOrCreate(filepath.Join(dir, SeedFile(r.Name)), r)
		if err != nil {
			return nil, err
		}
		users = append(users, u)
	}
	if err := os.WriteFile(filepath.Join(dir, ConfFile), []byte(Authorization(users)), 0o600); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	b, err := json.MarshalIndent(roles, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, RolesFile), append(b, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return users, nil
}

func loadOrCreate(path string, r Role) (User, error) {
	seed, err := os.ReadFile(path)
	if err == nil {
		kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(seed))))
		if err != nil {
			return User{}, fmt.Errorf("auth: %s: %w", path, err)
		}
		pub, err := kp.PublicKey()
		if err != nil {
			return User{}, fmt.Errorf("auth: %s: %w", path, err)
		}
		return User{Role: r, Public: pub, Seed: seed}, nil
	}
	if !os.IsNotExist(err) {
		return User{}, fmt.Errorf("auth: %w", err)
	}
	u, err := NewUser(r)
	if err != nil {
		return User{}, err
	}
	if err := os.WriteFile(path, append(u.Seed, '\n'), 0o600); err != nil {
		return User{}, fmt.Errorf("auth: %w", err)
	}
	return u, nil
}
