package model

import (
	"fmt"
	"math"
	"testing"
)

func TestScratchLinear(t *testing.T) {
	data := genLinear(100000, 1)
	X, y := data.clipped()
	ref := ols(t, X, y)
	s := data.stats(t)
	for _, eps := range []float64{0.5, 1, 2} {
		for r := 0; r < 5; r++ {
			m, err := ReleaseLinear(s, Params{Epsilon: eps, Delta: 1e-6})
			if err != nil {
				t.Fatal(err)
			}
			var worst float64
			line := ""
			for j, c := range m.Coefficients {
				h := data.spec.Features[j].Bounds.halfRange() / data.spec.Label.halfRange()
				e := math.Abs(c.Value-ref[j+1]) * h
				worst = math.Max(worst, e)
				line += fmt.Sprintf(" %s=%.4f[%.4f,%.4f] ols %.4f;", c.Name, c.Value, c.Lower, c.Upper, ref[j+1])
			}
			t.Logf("eps %g worst scaled %.5f ridge %.1f rmse %.3f r2 %.4f n %.0f icpt %.3f(%.3f) %s", eps, worst, m.Ridge, m.RMSE, m.R2, m.N, m.Intercept.Value, ref[0], line)
		}
	}
}

func TestScratchLogistic(t *testing.T) {
	data := genLogistic(100000, 1)
	ref, acc := nonPrivateLogistic(t, data)
	t.Logf("non-private θ %v acc %.4f", ref, acc)
	for _, eps := range []float64{0.5, 1, 2} {
		for r := 0; r < 3; r++ {
			m, err := FitLogistic(data.spec, LogisticParams{Epsilon: eps, Delta: 1e-6}, data.units())
			if err != nil {
				t.Fatal(err)
			}
			// scaled theta
			th := []float64{}
			for j, c := range m.Coefficients {
				th = append(th, c.Value*data.spec.Features[j].Bounds.halfRange())
			}
			t.Logf("eps %g acc %.4f n %.0f conf %+v scaled θ %v", eps, m.Accuracy, m.N, m.Confusion, th)
		}
	}
}
