package server

import (
	"context"

	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/governance"
)

// One answer for what the caller may not see. An application, grant or job the caller may not
// read answers a request naming it exactly as a missing one does — 404 not_found with the same
// body — so no response says whether another organisation's object exists. An action on an
// object the caller may read but not act on stays 403 (forbidden, separation_of_duties): the
// caller already knows the object exists, and the refusal tells it why. docs/server.md lists
// the rule per route; TestHiddenObjectsAnswerLikeMissingOnes pins it.

// sight is a read permission that makes an object visible: the action and the resource the
// policy judges it on.
type sight struct {
	action string
	res    policy.Resource
}

// authorizeSeen authorizes who to do action on res, an object that exists. A refusal is 403
// when one of sees lets who see the object, and otherwise the same not-found answer a missing
// object gets. The denial is recorded in provenance either way, under the action asked for.
func (s *Server) authorizeSeen(ctx context.Context, who policy.Principal, action string, res policy.Resource, sees ...sight) error {
	err := s.authorize(ctx, who, action, res)
	if err == nil {
		return nil
	}
	if c := errcode.Of(err); c != errcode.Forbidden && c != errcode.SeparationOfDuties {
		return err // the policy or the log could not answer: not a refusal
	}
	for _, v := range sees {
		if s.allowed(ctx, who, v.action, v.res) {
			return err
		}
	}
	return hiddenError{cause: err}
}

// grantFor loads grant id and authorizes who to do action on it: a grant who may not read
// answers as a missing one, and one it may read but not act on is refused (403).
func (s *Server) grantFor(ctx context.Context, who policy.Principal, id, action string) (api.Grant, error) {
	g, err := s.store.Grant(ctx, id)
	if err != nil {
		return g, err
	}
	return g, s.authorizeSeen(ctx, who, action, grantResource(g), readable(policy.ActionGrantRead, grantResource(g)))
}

// readable is the sight of an object through its read action.
func readable(action string, res policy.Resource) sight { return sight{action: action, res: res} }

// hiddenError is a refusal answered as a missing object: it matches governance.ErrNotFound,
// which the boundary turns into the same not_found document a missing object gets. The
// refusal is kept for errors.As and the operator's logs, never shown.
type hiddenError struct{ cause error }

func (e hiddenError) Error() string   { return "not visible to the caller" }
func (e hiddenError) Unwrap() []error { return []error{governance.ErrNotFound, e.cause} }
