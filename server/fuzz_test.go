package server_test

import (
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/server"
)

// FuzzParsePrincipals: any document is accepted or refused without a panic; an error never
// quotes a token given in the document; an accepted document authenticates nobody with an
// empty token.
func FuzzParsePrincipals(f *testing.F) {
	f.Add(principalsYAML)
	f.Add(`principals: [{name: a, role: auditor, org: o, token_sha256: "` + strings.Repeat("ab", 32) + `"}]`)
	f.Add(`principals: [{name: a, role: admin, org: o, token: "secret-secret-secret"}]`)
	f.Add("principals:\n  - name: [\n")
	f.Fuzz(func(t *testing.T, doc string) {
		ps, err := server.ParsePrincipals([]byte(doc))
		if err != nil {
			for _, tok := range tokensIn(doc) {
				if len(tok) >= 8 && strings.Contains(err.Error(), tok) {
					t.Fatalf("the error quotes a token: %v", err)
				}
			}
			return
		}
		if _, ok := ps.Authenticate(""); ok {
			t.Fatal("an empty token authenticated")
		}
	})
}

// tokensIn returns the quoted values following "token:" in a document (a rough scan).
func tokensIn(doc string) []string {
	var out []string
	for _, part := range strings.Split(doc, "token:")[1:] {
		part = strings.TrimSpace(part)
		if strings.HasPrefix(part, `"`) {
			if end := strings.Index(part[1:], `"`); end > 0 {
				out = append(out, part[1:1+end])
			}
		}
	}
	return out
}
