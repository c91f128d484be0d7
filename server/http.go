package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/policy"
	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/governance"
)

// maxBody bounds request bodies (a catalog spec with its public domains is the largest);
// maxJobBody bounds a job submission's, which may carry a verification's ciphertexts (64 KiB
// of them per 1,000 claims).
const (
	maxBody    = 4 << 20
	maxJobBody = 32 << 20
)

// handler is an authenticated route: it gets the caller and returns the status and response
// document (nil for none) or an error; status 0 means it wrote the answer itself (plain text).
type handler func(w http.ResponseWriter, r *http.Request, who policy.Principal) (status int, body any, err error)

// authed authenticates the bearer token, from the headers alone, and runs h, writing its
// document or its error. An address in an authentication backoff, or a principal that used up
// its denied requests, is answered 429 rate_limited before anything else; a long route gets
// the long write deadline.
func (s *Server) authed(h handler, long bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		addr := hostOf(r.RemoteAddr)
		if wait, blocked := s.auth.blocked(addr); blocked {
			s.tooMany(w, r, wait, "too many failed authentications from this address")
			return
		}
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		who, found := s.principals.Authenticate(strings.TrimSpace(token))
		if !ok || !found {
			s.auth.failed(addr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="cleanroom"`)
			s.writeError(w, r, errcode.New(errcode.Unauthenticated, "a valid bearer token is required"))
			return
		}
		if wait, limited := s.denied.limited(who); limited {
			s.denied.note(who, r.Pattern, resourceKind(r.URL.Path), "", string(errcode.RateLimited), nil, "")
			s.tooMany(w, r, wait, "too many denied requests from this principal")
			return
		}
		if long {
			_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.limits.LongWriteTimeout))
		}
		status, body, err := h(w, r, who)
		// A handler that answered before reading the whole body (a refusal decided from the
		// URL or the headers) would have the connection closed under a client still sending,
		// which then sees a reset instead of the answer: the rest is read first, within the
		// route's body limit (an unauthenticated caller's body is never read).
		_, _ = io.Copy(io.Discard, r.Body)
		switch {
		case err != nil:
			s.writeError(w, r, err)
		case status != 0: // 0: the handler wrote a non-JSON answer itself
			writeJSON(w, status, body)
		}
	}
}

// tooMany answers 429 rate_limited with Retry-After in whole seconds (at least 1).
func (s *Server) tooMany(w http.ResponseWriter, r *http.Request, wait time.Duration, why string) {
	secs := int64(math.Ceil(wait.Seconds()))
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	s.writeError(w, r, errcode.New(errcode.RateLimited, "%s; retry after %d s", why, secs))
}

// authorize asks the policy whether who may do action on res. A deny is returned as
// forbidden, or separation_of_duties when that is the policy's reason, and counted in the
// principal's requests_denied summary of the window (who, what, how many, when), which is
// written to provenance when the window ends: one record per principal per window, however
// many denials. It also takes a token of the principal's denied-request bucket.
func (s *Server) authorize(ctx context.Context, who policy.Principal, action string, res policy.Resource) error {
	d, err := s.eng.Authorize(ctx, policy.RequestInput{Principal: who, Action: action, Resource: res})
	if err == nil && d.Allowed() {
		return nil
	}
	code := errcode.Forbidden
	if slices.Contains(d.Codes(), string(errcode.SeparationOfDuties)) {
		code = errcode.SeparationOfDuties
	}
	s.denied.note(who, action, res.Kind, res.ID, string(code), d.Reasons, d.BundleDigest)
	return errcode.Wrap(code, err, "%s may not %s: %s", who.Name, action, strings.Join(d.Reasons, "; "))
}

// decode reads a JSON body strictly: unknown fields and trailing data are invalid_request.
// An empty body decodes as the zero document when allowEmpty.
func decode(r *http.Request, v any, allowEmpty bool) error {
	dec := json.NewDecoder(r.Body) // the guard's MaxBytesReader bounds it
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) && allowEmpty {
			return nil
		}
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			return bodyError(err, "")
		}
		return errcode.Wrap(errcode.InvalidRequest, err, "the request body is not a valid JSON document of the expected shape: %s", jsonProblem(err))
	}
	if dec.More() {
		return errcode.New(errcode.InvalidRequest, "the request body holds more than one JSON document")
	}
	return nil
}

// jsonProblem describes a decoding error without quoting the body.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("syntax error at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q must be %s", typ.Field, typ.Type)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the body is empty or cut short"
	}
	return "malformed"
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if body != nil {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(body)
	}
}

// writeError maps any error to its public form and status. Causes are logged for the
// operator, never sent.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, governance.ErrNotFound):
		err = errcode.Wrap(errcode.NotFound, err, "no such %s", resourceKind(r.URL.Path))
	case errors.Is(err, governance.ErrDuplicateReview):
		err = errcode.Wrap(errcode.SeparationOfDuties, err, "this reviewer has already reviewed the job; another reviewer must")
	case errors.Is(err, governance.ErrConflict):
		err = errcode.Wrap(errcode.Conflict, err, "the %s is not in a state that allows this", resourceKind(r.URL.Path))
	}
	pub := errcode.Public(err)
	status := statusOf(pub.Code)
	if rr := (refusedRequest{}); errors.As(err, &rr) && status != http.StatusForbidden {
		status = http.StatusBadRequest
	}
	if ra := (*retryAfter)(nil); errors.As(err, &ra) {
		w.Header().Set("Retry-After", strconv.Itoa(ra.after))
	}
	if status >= 500 {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "code", pub.Code, "err", err)
	}
	writeJSON(w, status, api.ErrorBody{Error: api.Error{Code: string(pub.Code), Message: pub.Message, Position: pub.Position}})
}

func resourceKind(path string) string {
	parts := strings.Split(strings.TrimPrefix(path, "/v1/"), "/")
	switch parts[0] {
	case "applications":
		return "application"
	case "grants":
		return "grant"
	case "jobs", "reviews", "audit":
		return "job"
	case "datasets":
		return "dataset"
	}
	return "resource"
}

// statusOf is the HTTP status of an error code.
func statusOf(code errcode.Code) int {
	switch code {
	case errcode.Unauthenticated:
		return http.StatusUnauthorized
	case errcode.RateLimited:
		return http.StatusTooManyRequests
	case errcode.RequestTooLarge:
		return http.StatusRequestEntityTooLarge
	case errcode.Forbidden, errcode.PolicyDenied, errcode.SeparationOfDuties, errcode.GrantExpired,
		errcode.GrantSuspended, errcode.GrantRevoked, errcode.BudgetExhausted, errcode.NotOperable,
		errcode.NoImportRoot, errcode.VerifySuspended, errcode.VerifyOpeningMismatch:
		return http.StatusForbidden
	case errcode.NotFound, errcode.UnknownDataset:
		return http.StatusNotFound
	case errcode.Conflict, errcode.DatasetBudgetInsufficient, errcode.DatasetAlreadyRegistered,
		errcode.VerifyOpeningLate, errcode.VerifyOpeningReplayed, errcode.VerifyKeyNotPinned:
		return http.StatusConflict
	case errcode.UnsupportedJobKind:
		return http.StatusNotImplemented
	case errcode.Unavailable:
		return http.StatusServiceUnavailable
	case errcode.QueueFull, errcode.VerifyLimit:
		return http.StatusTooManyRequests
	case errcode.Internal, errcode.ProvenanceFailed, errcode.SandboxFailed:
		return http.StatusInternalServerError
	case errcode.WasmInvalidModule: // the module is the request's: a bad request, like bad SQL
		return http.StatusBadRequest
	}
	return http.StatusBadRequest
}

// allowed asks the policy without recording a denial: for filtering lists and for deciding
// whether a document includes a result.
func (s *Server) allowed(ctx context.Context, who policy.Principal, action string, res policy.Resource) bool {
	d, err := s.eng.Authorize(ctx, policy.RequestInput{Principal: who, Action: action, Resource: res})
	return err == nil && d.Allowed()
}

func ptr[T any](v T) *T { return &v }
