package gate_test

import (
	"context"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/engine/gate"
	"github.com/c1b99f93/cleanroom/errcode"
)

// A query's text bounds what it can make the parser and the worker do: past MaxSQLBytes it is
// refused before it is parsed.
func TestGateRefusesOverlongSQL(t *testing.T) {
	p := newParser(t)
	in := strings.Repeat("'x', ", gate.MaxSQLBytes/5) + "'x'"
	_, err := gate.Admit(context.Background(), p, testCatalog(), "SELECT COUNT(*) FROM medical_visits WHERE diagnosis IN ("+in+")")
	if errcode.Of(err) != errcode.UnsupportedSQL || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("err = %v, want %s naming the limit", err, errcode.UnsupportedSQL)
	}
}
