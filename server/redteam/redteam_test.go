package redteam

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/c1b99f93/cleanroom/server/api"
)

// TestReconstructionRecoversEveryBitWithoutNoise proves the Dinur–Nissim attack is real: on
// exact subset counts (no noise) with an unknown padding, least squares and rounding recover
// every target's bit, even with some queries unanswered.
func TestReconstructionRecoversEveryBitWithoutNoise(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for _, c := range []struct{ m, n, unanswered int }{{60, 40, 0}, {60, 40, 15}, {30, 10, 3}} {
		bits := make([]float64, c.n)
		for i := range bits {
			bits[i] = float64(rng.IntN(2))
		}
		padding := 37.0
		sys := newSubsetSums(c.m, c.n, func() bool { return rng.IntN(2) == 1 })
		answers := make([]float64, c.m)
		for j := range answers {
			answers[j] = padding
			for i, b := range bits {
				if sys.in(j, i) {
					answers[j] += b
				}
			}
		}
		for _, j := range rng.Perm(c.m)[:c.unanswered] {
			answers[j] = math.NaN()
		}
		x, err := sys.solve(answers)
		if err != nil {
			t.Fatalf("m=%d n=%d: %v", c.m, c.n, err)
		}
		for i := range bits {
			if got := float64(guessBit(x[i])); got != bits[i] {
				t.Errorf("m=%d n=%d: target %d: estimate %.3g, bit %g", c.m, c.n, i, x[i], bits[i])
			}
		}
		// A query's noise reaches each target's estimate amplified by this gain: under 1 when
		// there are comfortably more queries than unknowns.
		if g := sys.noiseGain(); !(g > 0 && g < 1) {
			t.Errorf("m=%d n=%d: noise gain %g", c.m, c.n, g)
		}
	}
}

func TestReconstructionNeedsAsManyAnswersAsUnknowns(t *testing.T) {
	sys := newSubsetSums(10, 10, func() bool { return true })
	answers := make([]float64, 10)
	answers[0] = math.NaN()
	if _, err := sys.solve(answers); !errors.Is(err, errUnderdetermined) {
		t.Fatalf("9 answers for 11 unknowns: %v", err)
	}
}

func TestSubsetsAreNeverEmpty(t *testing.T) {
	calls := 0
	// A coin that says no for the first three draws of each row would leave small rows empty.
	sys := newSubsetSums(5, 3, func() bool { calls++; return calls%4 == 0 })
	for j := range 5 {
		if !slices.ContainsFunc([]int{0, 1, 2}, func(i int) bool { return sys.in(j, i) }) {
			t.Errorf("subset %d is empty", j)
		}
	}
}

func TestAccuracyAgainstTheMajorityBaseline(t *testing.T) {
	truth := []bool{true, false, false, false}
	for _, c := range []struct {
		name           string
		guesses        []int8
		attack, basePr float64
	}{
		{"perfect", []int8{1, 0, 0, 0}, 1, 0.75},
		{"one wrong", []int8{1, 1, 0, 0}, 0.75, 0.75},
		{"noise", []int8{0, 1, 1, 0}, 0.25, 0.75},
		{"blocked recovers the baseline", []int8{-1, -1, -1, -1}, 0.75, 0.75},
		{"partly answered", []int8{1, -1, -1, -1}, 1, 0.75},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := accuracy(c.guesses, truth)
			if s.Attack != c.attack || s.Baseline != c.basePr || s.Margin != bitMargin(4) {
				t.Errorf("accuracy = %+v, want attack %g baseline %g", s, c.attack, c.basePr)
			}
		})
	}
	if s := accuracy([]int8{-1, -1}, []bool{true, true}); s.Attack != 1 || s.Baseline != 1 {
		t.Errorf("a majority of ones: %+v", s)
	}
}

func TestBitMarginShrinksWithTargets(t *testing.T) {
	if bitMargin(0) != 0 {
		t.Error("no targets, no margin")
	}
	// Hoeffding at falseAlarm 1e-6: sqrt(ln(1e6) / 2n).
	if got := bitMargin(560); math.Abs(got-0.111) > 0.001 {
		t.Errorf("bitMargin(560) = %.4f, want 0.111", got)
	}
	if !(bitMargin(56) > bitMargin(140) && bitMargin(140) > bitMargin(560)) {
		t.Error("the margin does not shrink with more targets")
	}
}

func TestPinnedNeedsNarrowNoiseAndTheRightCount(t *testing.T) {
	for _, c := range []struct {
		est, hw, truth, want float64
	}{
		{12.2, 0.4, 12, 1},
		{12.2, 0.6, 12, 0}, // right by luck, but too noisy to claim
		{12.6, 0.4, 12, 0}, // narrow but wrong
		{12, 30, 12, 0},
	} {
		if got := pinned(c.est, c.hw, c.truth); got != c.want {
			t.Errorf("pinned(%g, ±%g, %g) = %g, want %g", c.est, c.hw, c.truth, got, c.want)
		}
	}
	if got := halfWidthOfSum(3, 4); got != 5 {
		t.Errorf("halfWidthOfSum(3, 4) = %g", got)
	}
}

func TestSummaryCarriesEachAttackAndTheDigest(t *testing.T) {
	rep := &Report{Grant: "g", Scored: true, Attacks: []Attack{
		{Name: "averaging", Jobs: 8, Cost: costOf(0.5), Score: &Score{Attack: 0, Baseline: 0}},
		{Name: "reconstruction", Jobs: 60, Blocked: true, Cost: costOf(6), Score: &Score{Attack: 0.99, Baseline: 0.9, Margin: 0.05}},
		{Name: "exfiltration", Jobs: 11},
	}}
	sum, err := rep.Summary()
	if err != nil {
		t.Fatal(err)
	}
	digest, _ := rep.SHA256()
	if sum.ReportSHA256 != digest || len(digest) != 64 || !sum.Scored || len(sum.Attacks) != 3 {
		t.Fatalf("summary %+v", sum)
	}
	rc := sum.Attacks[1]
	if rc.Name != "reconstruction" || rc.Jobs != 60 || !rc.Blocked || rc.Epsilon != 6 || !rc.Exceeds || *rc.Score != 0.99 || *rc.Margin != 0.05 {
		t.Errorf("reconstruction summary %+v", rc)
	}
	if sum.Attacks[2].Score != nil || sum.Attacks[2].Exceeds {
		t.Errorf("an unscored attack: %+v", sum.Attacks[2])
	}
	if got := rep.Exceeded(); !slices.Equal(got, []string{"reconstruction"}) {
		t.Errorf("Exceeded() = %q", got)
	}
	rep.Attacks[0].Jobs++
	if again, _ := rep.SHA256(); again == digest {
		t.Error("the digest does not change with the report")
	}
}

func TestLeaksFindsRawIdentifiersInAnswers(t *testing.T) {
	tr := &Truth{identifiers: map[string]struct{}{"530102197201214229": {}, "杨婷佳": {}, "V0000000001": {}}}
	got := tr.leaks([]string{
		`{"rows":[[{"key":"530102197201214229"},{"dp":{"value":3}}]]}`,
		`identifier_in_output: column person_id`,
		`{"key":"杨婷佳"} and again 530102197201214229`,
		`V00000000011 is not V0000000001's prefix`,
	})
	if want := []string{"530102197201214229", "杨婷佳", "V0000000001"}; !slices.Equal(got, want) {
		t.Errorf("leaks = %q, want %q", got, want)
	}
}

func TestRowsIndexReleasedCellsByTheirKeys(t *testing.T) {
	key := func(s string) *string { return &s }
	res := &api.Result{
		Columns: []api.ResultCol{{Name: "district", Kind: "group_key"}, {Name: "visit_date", Kind: "group_key"}, {Name: "n", Kind: "aggregate"}},
		Rows: [][]api.Cell{
			{{Key: key("530102")}, {Key: key("2024-01-05 00:00:00")}, {DP: &api.Released{Value: 3, CILow: 1, CIHigh: 5}}},
			{{Key: key("530103")}, {}, {DP: &api.Released{Value: 7}}},
		},
	}
	rows := outcome{res: res}.rows()
	if c, ok := rows["530102|2024-01-05"]; !ok || c.Value != 3 || halfWidth(c) != 2 {
		t.Errorf("rows = %+v", rows)
	}
	if _, ok := rows["530103|NULL"]; !ok {
		t.Errorf("a NULL key: %+v", rows)
	}
	if (outcome{code: "policy_denied"}).rows() != nil {
		t.Error("a refused job has rows")
	}
}

func costOf(eps float64) api.Budget { return api.Budget{Epsilon: eps} }
