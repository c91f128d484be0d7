package sandbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/duckdb/duckdb-go/v2"
)

// A failure's class names out-of-memory and I/O errors (what a 1e8-row registration met) and
// never carries DuckDB's message, which may quote data.
func TestDuckErrorClassNamesTheCauseWithoutTheMessage(t *testing.T) {
	const secret = "530102198001010011"
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("wrapped: %w", &duckdb.Error{Type: duckdb.ErrorTypeOutOfMemory, Msg: secret}), "out of memory"},
		{&duckdb.Error{Type: duckdb.ErrorTypeIO, Msg: secret}, "spill space"},
		{&duckdb.Error{Type: duckdb.ErrorTypeConversion, Msg: secret}, fmt.Sprintf("duckdb error type %d", duckdb.ErrorTypeConversion)},
		{context.DeadlineExceeded, "deadline exceeded"},
		{errors.New(secret), "non-duckdb error"},
	} {
		got := duckErrorClass(c.err)
		if !strings.Contains(got, c.want) || strings.Contains(got, secret) {
			t.Errorf("duckErrorClass(%v) = %q, want it to contain %q and no message", c.err, got, c.want)
		}
	}
}
