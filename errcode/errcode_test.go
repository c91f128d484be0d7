package errcode_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/c1b99f93/cleanroom/errcode"
)

// planted is a data value (a resident ID number) that must never reach an applicant.
const planted = "530102198001011234"

func TestPublicOfUntypedErrorIsInternalWithFixedMessage(t *testing.T) {
	fixed := errcode.Public(errors.New("x")).Message
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"plain error", errors.New("duckdb: Conversion Error: could not convert '" + planted + "' to INT32")},
		{"wrapped plain error", fmt.Errorf("worker: %w", errors.New("row "+planted))},
		{"sentinel", io.ErrUnexpectedEOF},
		{"joined plain errors", errors.Join(errors.New(planted), errors.New("other"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := errcode.Public(tc.err)
			if p.Code != errcode.Internal {
				t.Errorf("code %q, want %q", p.Code, errcode.Internal)
			}
			if p.Message != fixed {
				t.Errorf("message %q is not the fixed internal message %q", p.Message, fixed)
			}
			if p.Position != nil {
				t.Errorf("position %d for an untyped error", *p.Position)
			}
			b, _ := json.Marshal(p)
			if strings.Contains(string(b), planted) || strings.Contains(string(b), "duckdb") {
				t.Errorf("public form leaks the cause: %s", b)
			}
		})
	}
	if strings.Contains(fixed, planted) || fixed == "" {
		t.Errorf("fixed message %q", fixed)
	}
}

func TestPublicOfTypedErrorDropsItsCause(t *testing.T) {
	err := errcode.Wrap(errcode.SandboxFailed, errors.New("value "+planted+" overflowed"), "the sandbox worker failed")
	p := errcode.Public(fmt.Errorf("job: %w", err))
	if p.Code != errcode.SandboxFailed || p.Message != "the sandbox worker failed" {
		t.Errorf("public %+v", p)
	}
	if b, _ := json.Marshal(p); strings.Contains(string(b), planted) {
		t.Errorf("public form leaks the cause: %s", b)
	}
	// The cause is still there for the operator's log.
	if !strings.Contains(err.Unwrap().Error(), planted) {
		t.Errorf("Unwrap lost the cause")
	}
}

func TestPublicOfWrappedTypedErrorKeepsCodeMessageAndPosition(t *testing.T) {
	pos := func(n int) *int { return &n }
	for _, tc := range []struct {
		name string
		err  error
		want errcode.PublicError
	}{
		{"At", errcode.At(errcode.SyntaxError, 17, "the SQL could not be parsed"),
			errcode.PublicError{Code: errcode.SyntaxError, Message: "the SQL could not be parsed", Position: pos(17)}},
		{"At position zero", errcode.At(errcode.UnsupportedSQL, 0, "COPY is not admitted"),
			errcode.PublicError{Code: errcode.UnsupportedSQL, Message: "COPY is not admitted", Position: pos(0)}},
		{"New has no position", errcode.New(errcode.BudgetExhausted, "budget of %s exhausted", "visits"),
			errcode.PublicError{Code: errcode.BudgetExhausted, Message: "budget of visits exhausted"}},
		{"Wrap has no position", errcode.Wrap(errcode.SandboxTimeout, errors.New("deadline"), "the job took too long"),
			errcode.PublicError{Code: errcode.SandboxTimeout, Message: "the job took too long"}},
	} {
		for depth, err := range []error{
			tc.err,
			fmt.Errorf("plan: %w", tc.err),
			fmt.Errorf("engine: %w", fmt.Errorf("plan: %w", tc.err)),
			errors.Join(errors.New("ledger: "+planted), tc.err),
		} {
			t.Run(fmt.Sprintf("%s/depth %d", tc.name, depth), func(t *testing.T) {
				got := errcode.Public(err)
				if got.Code != tc.want.Code || got.Message != tc.want.Message {
					t.Errorf("Public = %q %q, want %q %q", got.Code, got.Message, tc.want.Code, tc.want.Message)
				}
				switch {
				case tc.want.Position == nil && got.Position != nil:
					t.Errorf("position %d, want none", *got.Position)
				case tc.want.Position != nil && (got.Position == nil || *got.Position != *tc.want.Position):
					t.Errorf("position %v, want %d", got.Position, *tc.want.Position)
				}
				if b, _ := json.Marshal(got); strings.Contains(string(b), planted) {
					t.Errorf("public form leaks a joined cause: %s", b)
				}
				if errcode.Of(err) != tc.want.Code {
					t.Errorf("Code = %q, want %q", errcode.Of(err), tc.want.Code)
				}
			})
		}
	}
}

func TestPublicErrorJSONOmitsOnlyAbsentPosition(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{errcode.New(errcode.UnknownDataset, "no such dataset"), `{"code":"unknown_dataset","message":"no such dataset"}`},
		{errcode.At(errcode.SyntaxError, 0, "bad"), `{"code":"syntax_error","message":"bad","position":0}`},
	} {
		b, err := json.Marshal(errcode.Public(tc.err))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tc.want {
			t.Errorf("got %s, want %s", b, tc.want)
		}
	}
}

func TestOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want errcode.Code
	}{
		{"nil is empty", nil, ""},
		{"untyped is internal", errors.New(planted), errcode.Internal},
		{"typed", errcode.New(errcode.PolicyDenied, "denied"), errcode.PolicyDenied},
		{"wrapped typed", fmt.Errorf("x: %w", errcode.New(errcode.EgressDenied, "denied")), errcode.EgressDenied},
		{"outermost typed wins", errcode.Wrap(errcode.ProvenanceFailed, errcode.New(errcode.Internal, "disk"), "provenance"), errcode.ProvenanceFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := errcode.Of(tc.err); got != tc.want {
				t.Errorf("Code = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestWrapKeepsCauseForErrorsIs(t *testing.T) {
	err := fmt.Errorf("job: %w", errcode.Wrap(errcode.Canceled, io.ErrClosedPipe, "the job was canceled"))
	if !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("errors.Is does not reach the wrapped cause")
	}
	var e *errcode.Error
	if !errors.As(err, &e) || e.Position != -1 {
		t.Errorf("errors.As found %#v; want an *Error without position", e)
	}
}
