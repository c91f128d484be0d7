package redteam

import "math"

// falseAlarm is the chance we accept that an attack no better than its baseline still exceeds
// baseline + margin by luck, per attack and run: small enough that the tests never flake.
const falseAlarm = 1e-6

// bitMargin is the margin for the accuracy of n guessed bits: by Hoeffding's inequality, the
// share of n independent guesses that are right exceeds its expectation by more than
// sqrt(ln(1/falseAlarm) / 2n) with probability at most falseAlarm. An attack whose expected
// accuracy is at most the baseline's therefore exceeds baseline + bitMargin(n) with probability
// at most falseAlarm (0.11 for 560 targets, 0.29 for 84).
func bitMargin(n int) float64 {
	if n <= 0 {
		return 0
	}
	return math.Sqrt(math.Log(1/falseAlarm) / (2 * float64(n)))
}

// Guesses of a bit: the attacker's guess per target, or unknown when it got no answer.
const (
	guessUnknown int8 = -1
	guessNo      int8 = 0
	guessYes     int8 = 1
)

// guessBit guesses a count's bit (is it at least one?) from its noisy estimate by rounding.
func guessBit(estimate float64) int8 {
	if estimate >= 0.5 {
		return guessYes
	}
	return guessNo
}

// accuracy scores guessed bits against the truth. The baseline is the majority-class guess: the
// best constant guess, which needs no query at all. A target the attacker has no answer for
// gets the baseline's guess, so a blocked attack recovers exactly the baseline.
func accuracy(guesses []int8, truth []bool) Score {
	ones := 0
	for _, b := range truth {
		if b {
			ones++
		}
	}
	majority := 2*ones > len(truth)
	right, baseRight := 0, 0
	for i, b := range truth {
		g := guesses[i]
		if g == guessUnknown {
			g = guessNo
			if majority {
				g = guessYes
			}
		}
		if (g == guessYes) == b {
			right++
		}
		if majority == b {
			baseRight++
		}
	}
	n := float64(max(len(truth), 1))
	return Score{Metric: "share of targets' sensitive bits guessed right", Attack: float64(right) / n,
		Baseline: float64(baseRight) / n, Margin: bitMargin(len(truth))}
}

// pinned scores an estimate of a count: 1 when the attacker may claim the exact count (its 95%
// half-width is under 0.5, so rounding is right with 95% confidence) and it is right, else 0.
// The rule depends on the noise the server reports, not on luck, so the margin is 0.
func pinned(estimate, halfWidth, truth float64) float64 {
	if halfWidth < 0.5 && math.Abs(estimate-truth) < 0.5 {
		return 1
	}
	return 0
}

// halfWidthOfSum is the 95% half-width of a sum or difference of independent estimates with
// half-widths hs (normal approximation: half-widths add in quadrature).
func halfWidthOfSum(hs ...float64) float64 {
	s := 0.0
	for _, h := range hs {
		s += h * h
	}
	return math.Sqrt(s)
}
