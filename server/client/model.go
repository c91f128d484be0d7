package client

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/c1b99f93/cleanroom/server/api"
)

// TrainModel is POST /v1/jobs for a model job (kind model) on grant: a DP linear or logistic
// regression of m's SQL rows. The job starts queued; WaitJob follows it and ModelResult reads
// the released model.
func (c *Client) TrainModel(ctx context.Context, grant string, m api.ModelRequest, opts api.JobOptions) (*api.Job, error) {
	return c.SubmitJob(ctx, api.JobRequest{Grant: grant, Kind: api.KindModel, Model: &m, Options: opts})
}

// ModelResult decodes a released model job's result.
func ModelResult(j *api.Job) (*api.ModelResult, error) {
	if j == nil || j.Kind != api.KindModel || len(j.Result) == 0 {
		return nil, errors.New("client: not a released model job")
	}
	var r api.ModelResult
	if err := json.Unmarshal(j.Result, &r); err != nil {
		return nil, err
	}
	return &r, nil
}
