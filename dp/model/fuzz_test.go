package model

import (
	"bytes"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the three state decoders, with the engine's fixed specs
// and step: none may panic, and whatever decodes must re-encode to the same bytes. The seed
// corpus (valid states of each kind, truncated and corrupted ones) runs with go test.
func FuzzDecode(f *testing.F) {
	lin := genLinear(50, 1)
	lg := genLogistic(50, 1)
	step := Step{Iteration: 2, Theta: []float64{0.5, -1, 0.25, 2, -0.75}}
	s := lin.stats(f)
	g, err := GradientSum(lg.spec, step, lg.units())
	if err != nil {
		f.Fatal(err)
	}
	c, err := ConfusionCounts(lg.spec, step, lg.units())
	if err != nil {
		f.Fatal(err)
	}
	for _, valid := range [][]byte{s.Encode(), g.Encode(), c.Encode()} {
		f.Add(valid)
		f.Add(valid[:len(valid)-1])
		f.Add(valid[:headerLen])
		for _, at := range []int{4, 5, 6, 22, 30, headerLen} {
			b := bytes.Clone(valid)
			b[at] ^= 0x80
			f.Add(b)
		}
	}
	f.Add([]byte{})
	f.Add([]byte(stateMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		if st, err := DecodeStats(b, lin.spec); err == nil && !bytes.Equal(st.Encode(), b) {
			t.Error("linear state does not re-encode to its bytes")
		}
		if gd, err := DecodeGradient(b, lg.spec, step); err == nil && !bytes.Equal(gd.Encode(), b) {
			t.Error("gradient state does not re-encode to its bytes")
		}
		if cd, err := DecodeConfusion(b, lg.spec, step); err == nil && !bytes.Equal(cd.Encode(), b) {
			t.Error("confusion state does not re-encode to its bytes")
		}
	})
}
