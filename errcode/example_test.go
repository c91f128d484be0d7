package errcode_test

import (
	"errors"
	"fmt"

	"github.com/c1b99f93/cleanroom/errcode"
)

// Public is the one converter at the boundary: a typed error keeps its vetted message and
// position; anything else, whatever it says, becomes a fixed internal message.
func ExamplePublic() {
	admitted := fmt.Errorf("gate: %w", errcode.At(errcode.UnsupportedSQL, 0, "COPY is not admitted"))
	p := errcode.Public(admitted)
	fmt.Println(p.Code, p.Message, *p.Position)

	raw := errors.New(`Conversion Error: could not convert string '530102198001011234' to INT32`)
	fmt.Println(errcode.Public(raw).Code)
	// Output:
	// unsupported_sql COPY is not admitted 0
	// internal
}
