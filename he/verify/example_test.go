package verify_test

import (
	"fmt"

	"github.com/c1b99f93/cleanroom/he/verify"
)

// An insurer checks three declarations against a domain's records: an income band, a
// registered capital of at least 1M (a band over edges {1e6}), and a yes/no attribute of a
// subject the domain has no record of.
func Example() {
	// Applicant: keys once, then claims.
	applicant, err := verify.GenerateKeys()
	if err != nil {
		panic(err)
	}
	capitalEdges := []float64{1e6}
	claims := []uint64{
		verify.Encode("3"), // income band 3
		verify.Encode(verify.BandOf(capitalEdges, 1e6)), // capital ≥ 1M: band "1"
		verify.Encode("no"),                             // no inpatient stay in 2 years
	}
	cts, err := applicant.EncryptClaims(claims)
	if err != nil {
		panic(err)
	}

	// Domain: its records, encoded the same way; it never sees the claims.
	actual := []verify.Actual{
		{Value: verify.Encode("003"), Present: true},                            // band 3: match
		{Value: verify.Encode(verify.BandOf(capitalEdges, 4e5)), Present: true}, // 400k: band "0"
		{Present: false}, // no record
	}
	answers, err := verify.Evaluate(applicant.PublicKey(), cts, actual)
	if err != nil {
		panic(err)
	}

	// Applicant: match or no match, nothing else.
	matches, err := applicant.DecryptMatches(answers, len(claims))
	if err != nil {
		panic(err)
	}
	fmt.Println(matches)
	// Output: [true false false]
}
