package accountant

import (
	"errors"
	"fmt"
)

// ErrInvalidEvent is matched (errors.Is) by every *EventError: Compose refuses a history with
// an event it cannot account for rather than report a figure that might understate the loss.
var ErrInvalidEvent = errors.New("accountant: invalid noise event")

// ErrInvalidParameter is wrapped when a conversion (GaussianEpsilon, ZCDPEpsilon) is given a
// parameter outside its domain: negative, not finite, or a delta outside (0, 1].
var ErrInvalidParameter = errors.New("accountant: invalid parameter")

// EventError names the event Compose refused and the field that made it refuse. Its message is
// built only from the index, the field's JSON name and a fixed reason — never from the values,
// so it is safe to log beside a job identifier.
type EventError struct {
	Index  int    // position of the event in the history
	Field  string // JSON name of the offending field, e.g. "noise_stddev"
	Reason string // fixed text, e.g. "must be positive and finite"
}

func (e *EventError) Error() string {
	return fmt.Sprintf("accountant: event %d: %s %s", e.Index, e.Field, e.Reason)
}

// Unwrap makes every *EventError match ErrInvalidEvent.
func (e *EventError) Unwrap() error { return ErrInvalidEvent }
