package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/c1b99f93/cleanroom/errcode"
)

// Recorded is a past decision as the platform recorded it.
type Recorded struct {
	Job     string          `json:"job"`
	Query   string          `json:"query"` // AccessQuery, EgressQuery or APIQuery
	Input   json.RawMessage `json:"input"` // an AccessInput, EgressInput or RequestInput
	Result  string          `json:"result"`
	Reasons []string        `json:"reasons"`
}

// Change is a decision a candidate bundle would make differently.
type Change struct {
	Job         string   `json:"job"`
	Query       string   `json:"query"`
	From        string   `json:"from"` // recorded result
	To          string   `json:"to"`   // candidate's result
	FromReasons []string `json:"from_reasons"`
	ToReasons   []string `json:"to_reasons"`
}

// WhatIf replays recorded decisions under a candidate bundle and returns, in input order,
// every one whose result the candidate would change (allow→deny, deny→allow, allow→review,
// …). Decisions whose result stays the same are not listed, even if their reasons or
// reviewer count differ. It never changes anything: it only evaluates.
//
// Each input is decoded into its Go type (unknown fields refused, so that what is replayed is
// what was recorded) and decided by the candidate's Access, Egress or Authorize. A record that
// cannot be replayed is an *Error with errcode.PolicyRecordInvalid; a candidate that fails to evaluate
// one is an *Error with errcode.PolicyEvalFailed: a failing candidate is not a prediction.
func WhatIf(ctx context.Context, candidate *Engine, recorded []Recorded) ([]Change, error) {
	changes := []Change{}
	for i, r := range recorded {
		op := fmt.Sprintf("replay record %d (job %s)", i, r.Job)
		switch r.Result {
		case ResultAllow, ResultReview, ResultDeny:
		default:
			return nil, &Error{Code: errcode.PolicyRecordInvalid, Op: op, Err: errors.New("recorded result is not allow, review or deny")}
		}
		d, err := replay(ctx, candidate, r)
		if err != nil {
			if pe := (*Error)(nil); errors.As(err, &pe) {
				return nil, &Error{Code: pe.Code, Op: op + ": " + pe.Op, Err: pe.Err}
			}
			return nil, &Error{Code: errcode.PolicyRecordInvalid, Op: op, Err: err}
		}
		if d.Result == r.Result {
			continue
		}
		from := r.Reasons
		if from == nil {
			from = []string{}
		}
		changes = append(changes, Change{
			Job: r.Job, Query: r.Query, From: r.Result, To: d.Result,
			FromReasons: from, ToReasons: d.Reasons,
		})
	}
	return changes, nil
}

// replay decides r's input under e through the method that serves r's query.
func replay(ctx context.Context, e *Engine, r Recorded) (Decision, error) {
	switch r.Query {
	case AccessQuery:
		var in AccessInput
		if err := decodeStrict(r.Input, &in); err != nil {
			return Decision{}, err
		}
		return e.Access(ctx, in)
	case EgressQuery:
		var in EgressInput
		if err := decodeStrict(r.Input, &in); err != nil {
			return Decision{}, err
		}
		return e.Egress(ctx, in)
	case APIQuery:
		var in RequestInput
		if err := decodeStrict(r.Input, &in); err != nil {
			return Decision{}, err
		}
		return e.Authorize(ctx, in)
	}
	return Decision{}, fmt.Errorf("unknown query %q", r.Query)
}

// decodeStrict decodes one JSON object into v, refusing unknown fields and trailing data.
func decodeStrict(raw json.RawMessage, v any) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return errors.New("input is not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("input does not decode: %w", err)
	}
	if dec.More() {
		return errors.New("input has data after its object")
	}
	return nil
}
