package api

// FederatedRequest is a federated job's input (kind federated_sql): the datasets, each in a
// different data domain, over whose union the job's SQL computes one DP statistic. The SQL is
// written against the first dataset and run unchanged against each; no party — the platform
// included — sees another domain's aggregate, only the noisy total is decrypted
// (docs/he-collective.md, "On the platform").
type FederatedRequest struct {
	Datasets []string `json:"datasets"`
}
