package engine

import "time"

// SetVerifySeams sets the cut-and-choose test seams of e: the challenge drawn for n candidates
// and the deadlines' clock (nil keeps crypto/rand and time.Now). Test files only: production
// code cannot reach the fields.
func SetVerifySeams(e *Engine, challenge func(n int) int, clock func() time.Time) {
	e.verifyChallenge, e.verifyClock = challenge, clock
}
