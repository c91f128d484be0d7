package policy

import (
	"fmt"

	"github.com/c1b99f93/cleanroom/errcode"
)

// Error is a policy error with a stable code. Err is the cause from OPA or the file system;
// its text may quote input values, so at the API boundary show Code only.
type Error struct {
	Code errcode.Code
	Op   string // what was being done, e.g. "load bundle", "evaluate access"
	Err  error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("policy: %s: %s", e.Op, e.Code)
	}
	return fmt.Sprintf("policy: %s: %s: %v", e.Op, e.Code, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }
