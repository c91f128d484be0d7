package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/c1b99f93/cleanroom/server/api"
	"github.com/c1b99f93/cleanroom/server/client"
)

// Submit a SQL job under a grant, wait for it, and branch on the error code of a refusal.
func Example() {
	// A stand-in for a cleanroom server: it queues the job, then releases it on the first poll,
	// and refuses grant g-0.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/v1/jobs":
			var req api.JobRequest
			json.NewDecoder(r.Body).Decode(&req)
			if req.Grant == "g-0" {
				w.WriteHeader(http.StatusForbidden)
				json.NewEncoder(w).Encode(api.ErrorBody{Error: api.Error{Code: "grant_expired", Message: "grant g-0 ended"}})
				return
			}
			w.WriteHeader(http.StatusAccepted)
			json.NewEncoder(w).Encode(api.Job{ID: "j-1", State: api.JobQueued, Grant: req.Grant})
		case r.URL.Path == "/v1/jobs/j-1":
			json.NewEncoder(w).Encode(api.Job{ID: "j-1", State: api.JobReleased, Result: json.RawMessage(`{"rows":[]}`)})
		}
	}))
	defer srv.Close()

	c, err := client.New(srv.URL, "example-token")
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	j, err := c.SubmitJob(ctx, api.JobRequest{Grant: "g-1", SQL: "SELECT district, COUNT(*) AS n FROM visits GROUP BY district"})
	if err != nil {
		panic(err)
	}
	if j, err = c.WaitJob(ctx, j.ID); err != nil {
		panic(err)
	}
	fmt.Println(j.ID, j.State)

	_, err = c.SubmitJob(ctx, api.JobRequest{Grant: "g-0", SQL: "SELECT COUNT(*) FROM visits"})
	var apiErr *client.Error
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.Status, apiErr.Code)
	}
	// Output:
	// j-1 released
	// 403 grant_expired
}
