package main

import (
	"errors"
	"strings"
	"testing"
)

// TestReadClaimsTakesTheColumnsByName: the claims CSV's columns are found by name in any
// order, the consent column or --consent fills each row's reference, and a missing column, a
// ragged row or a row without a reference is refused naming the line.
func TestReadClaimsTakesTheColumnsByName(t *testing.T) {
	_, rows, claims, err := readClaims(strings.NewReader("claimed,subject,Dataset,attribute,consent\nmiddle,p1,residents,income_band,c-1\nhigh,p2,residents,income_band,\n"), "default-ref")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || claims[0].Subject != "p1" || claims[0].Claimed != "middle" || claims[0].Consent != "c-1" || claims[1].Consent != "default-ref" {
		t.Fatalf("claims %+v", claims)
	}
	for _, tc := range []struct{ csv, consent, want string }{
		{"dataset,subject,attribute\nresidents,p1,income_band\n", "c", "no claimed column"},
		{"dataset,subject,attribute,claimed\nresidents,p1,income_band\n", "c", "line 2"},
		{"dataset,subject,attribute,claimed\nresidents,p1,income_band,low\n", "", "line 2: no consent"},
		{"dataset,subject,attribute,claimed\n", "c", "no claims"},
		{"", "c", "no header"},
	} {
		if _, _, _, err := readClaims(strings.NewReader(tc.csv), tc.consent); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error with %q", tc.csv, err, tc.want)
		}
	}
}

// FuzzReadClaims: any input is read or refused with an error; never a panic, and every claim
// read carries a consent reference and the four fields from its own row.
func FuzzReadClaims(f *testing.F) {
	f.Add("dataset,subject,attribute,claimed,consent\nresidents,p1,income_band,middle,c-1\n", "")
	f.Add("claimed,subject,dataset,attribute\n\"a,b\",p,d,x\n", "ref")
	f.Add("dataset,subject,attribute,claimed\n\"unterminated\n", "ref")
	f.Fuzz(func(t *testing.T, csv, consent string) {
		header, rows, claims, err := readClaims(strings.NewReader(csv), consent)
		if err != nil {
			if errors.Unwrap(err) == nil && err.Error() == "" {
				t.Fatal("an empty error")
			}
			return
		}
		if len(rows) != len(claims) || len(claims) == 0 || len(header) < 4 {
			t.Fatalf("%d rows, %d claims, header %q", len(rows), len(claims), header)
		}
		for i, c := range claims {
			if strings.TrimSpace(c.Consent) == "" || len(rows[i]) != len(header) {
				t.Fatalf("claim %d: %+v from row %q", i, c, rows[i])
			}
		}
	})
}
