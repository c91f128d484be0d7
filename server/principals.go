package server

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"

	"gopkg.in/yaml.v3"

	"github.com/c1b99f93/cleanroom/policy"
)

// Roles a principal may hold.
var Roles = []string{"provider", "operator", "applicant", "reviewer", "auditor"}

// minTokenLength keeps clear-text tokens in a principals file from being guessable.
const minTokenLength = 16

// principalsFile is the YAML document of --principals.
type principalsFile struct {
	Principals []principalEntry `yaml:"principals"`
}

type principalEntry struct {
	Name        string `yaml:"name"`
	Role        string `yaml:"role"`
	Org         string `yaml:"org"`
	Token       string `yaml:"token"`
	TokenSHA256 string `yaml:"token_sha256"`
}

// Principals maps bearer tokens to principals. Only SHA-256 digests of tokens are kept.
type Principals struct {
	list []principal
}

type principal struct {
	policy.Principal
	digest [sha256.Size]byte
}

// LoadPrincipals reads a principals file. Each entry names a principal, its role and org, and
// either its token or the token's SHA-256 in hex. Unknown keys, unknown roles, duplicate names
// or tokens, and short tokens are refused; an error never quotes a token.
func LoadPrincipals(path string) (*Principals, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParsePrincipals(b)
}

// ParsePrincipals is LoadPrincipals over the file's bytes.
func ParsePrincipals(b []byte) (*Principals, error) {
	var f principalsFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("principals: %w", err)
	}
	if len(f.Principals) == 0 {
		return nil, errors.New("principals: the file lists no principals")
	}
	p := &Principals{}
	names := map[string]bool{}
	digests := map[[sha256.Size]byte]bool{}
	for i, e := range f.Principals {
		where := fmt.Sprintf("principals[%d]", i)
		if e.Name == "" || e.Org == "" {
			return nil, fmt.Errorf("principals: %s needs a name and an org", where)
		}
		if !slices.Contains(Roles, e.Role) {
			return nil, fmt.Errorf("principals: %s (%s) has role %q; roles are %v", where, e.Name, e.Role, Roles)
		}
		if names[e.Name] {
			return nil, fmt.Errorf("principals: %s: the name %q is used twice", where, e.Name)
		}
		names[e.Name] = true
		var d [sha256.Size]byte
		switch {
		case e.Token != "" && e.TokenSHA256 != "":
			return nil, fmt.Errorf("principals: %s (%s) gives both token and token_sha256", where, e.Name)
		case e.Token != "":
			if len(e.Token) < minTokenLength {
				return nil, fmt.Errorf("principals: %s (%s) has a token shorter than %d characters", where, e.Name, minTokenLength)
			}
			d = sha256.Sum256([]byte(e.Token))
		case e.TokenSHA256 != "":
			raw, err := hex.DecodeString(e.TokenSHA256)
			if err != nil || len(raw) != sha256.Size {
				return nil, fmt.Errorf("principals: %s (%s): token_sha256 is not 64 hex digits", where, e.Name)
			}
			copy(d[:], raw)
		default:
			return nil, fmt.Errorf("principals: %s (%s) needs a token or token_sha256", where, e.Name)
		}
		if digests[d] {
			return nil, fmt.Errorf("principals: %s (%s) shares its token with another principal", where, e.Name)
		}
		digests[d] = true
		p.list = append(p.list, principal{Principal: policy.Principal{Name: e.Name, Role: e.Role, Org: e.Org}, digest: d})
	}
	return p, nil
}

// Authenticate returns the principal holding token. It compares the token's digest with every
// principal's in constant time and without stopping early, so timing says nothing about which
// or how much of a token matched.
func (p *Principals) Authenticate(token string) (policy.Principal, bool) {
	if token == "" {
		return policy.Principal{}, false
	}
	d := sha256.Sum256([]byte(token))
	found := -1
	for i := range p.list {
		if subtle.ConstantTimeCompare(d[:], p.list[i].digest[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return policy.Principal{}, false
	}
	return p.list[found].Principal, true
}

// NewToken returns a fresh random bearer token and its SHA-256 in hex (for token_sha256).
func NewToken() (token, digest string, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", err
	}
	token = "crt_" + hex.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(token))
	return token, hex.EncodeToString(sum[:]), nil
}
