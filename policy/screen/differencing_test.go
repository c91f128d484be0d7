package screen

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/policy"
)

func TestDifferencingCheck(t *testing.T) {
	out := &Table{Cols: []Column{{Name: "n", Kind: KindAggregate}}, Data: [][]Value{{Float(120)}}}
	for _, tc := range []struct {
		name   string
		min    float64
		probes []DifferenceProbe
		want   int // differencing findings
	}{
		{"off", 0, []DifferenceProbe{{Against: "job-1", Units: 0.4}}, 0},
		{"no_probes", 10, nil, 0},
		{"one_person", 10, []DifferenceProbe{{Against: "job-1", Units: 1.3}}, 1},
		{"negative_noise", 10, []DifferenceProbe{{Against: "job-1", Units: -2.5}}, 1},
		{"at_minimum", 10, []DifferenceProbe{{Against: "job-1", Units: 10}}, 0},
		{"wide", 10, []DifferenceProbe{{Against: "job-1", Units: 540}}, 0},
		{"nan_fails_closed", 10, []DifferenceProbe{{Against: "job-1", Units: math.NaN()}}, 1},
		{"nearest_of_many", 10, []DifferenceProbe{{Candidates: []string{"job-1", "job-2", "job-3", "job-4", "job-5", "job-6", "job-7"}, Units: 2}}, 1},
		{"each_prior", 10, []DifferenceProbe{{Against: "job-1", Units: 3}, {Against: "job-2", Units: 400}, {Against: "job-3", Units: 9.9}}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(WithDifferencing(tc.min, tc.probes))
			if err != nil {
				t.Fatal(err)
			}
			var got []policy.Finding
			for _, f := range r.Screen(context.Background(), out).Findings {
				if f.Code == CodeDifferencing {
					got = append(got, f)
				}
			}
			if len(got) != tc.want {
				t.Fatalf("findings %v, want %d differencing", got, tc.want)
			}
			for _, f := range got {
				if f.Severity != policy.SeverityMedium || !strings.Contains(f.Message, "job-") {
					t.Errorf("finding %+v: want medium, naming the earlier job", f)
				}
			}
		})
	}
}

func TestDifferencingOptionRefusesBadInput(t *testing.T) {
	for _, tc := range []struct {
		min    float64
		probes []DifferenceProbe
	}{
		{-1, nil},
		{math.Inf(1), nil},
		{math.NaN(), nil},
		{10, []DifferenceProbe{{Against: "", Units: 1}}},
		{10, []DifferenceProbe{{Candidates: []string{}, Units: 1}}},
		{10, []DifferenceProbe{{Candidates: []string{"job-1", "job 1; 13812345678"}, Units: 1}}}, // a message may only quote a plain job ID
	} {
		if _, err := New(WithDifferencing(tc.min, tc.probes)); !errors.Is(err, ErrInvalidDifferencing) {
			t.Errorf("WithDifferencing(%v, %v): %v, want ErrInvalidDifferencing", tc.min, tc.probes, err)
		}
	}
	if !slices.Contains(Codes(), CodeDifferencing) || Severity(CodeDifferencing) != policy.SeverityMedium {
		t.Fatal("differencing_suspected is not a listed medium code")
	}
}
