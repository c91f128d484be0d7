package server

import (
	"testing"
	"time"
)

// A job's outcome becomes visible only at a whole number of completion quanta after it was
// claimed, so its visible duration says which quantum its computation ended in, not when.
func TestCompletionWaitsForTheQuantumsEnd(t *testing.T) {
	const q = 150 * time.Millisecond
	s := &Server{cfg: Config{CompletionQuantum: q}, stopping: make(chan struct{})}
	for _, ran := range []time.Duration{0, 40 * time.Millisecond, 170 * time.Millisecond} {
		claimed := time.Now().Add(-ran)
		s.completeAt(claimed)
		visible := time.Since(claimed)
		want := max(1, (ran+q-1)/q) * q
		if visible < want || visible > want+q/2 {
			t.Errorf("a job that ran %v became visible after %v, want about %v", ran, visible, want)
		}
	}
}
