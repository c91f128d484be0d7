package api

// Model types (ModelRequest.Type).
const (
	ModelLinearRegression   = "linear_regression"
	ModelLogisticRegression = "logistic_regression"
)

// ModelRequest is a model job's input (kind model): a DP linear or logistic regression trained
// on the rows of a row-level SQL the applicant never sees. SQL selects the privacy unit first,
// then the features and the label by name: SELECT <unit>, <col or expr AS name>, … FROM <dataset>
// [JOIN <dataset> ON <units> | JOIN <lookup table> ON …] [WHERE …]. Each feature and the label
// is a number with public bounds — a catalog column's, those the SQL implies (a CASE of
// numbers, a condition's [0, 1]) or the request's Bounds, which win; values are clipped to
// them. A logistic label is positive where its value is at least 0.5 (a condition, a 0/1
// column). The SQL and the rows are never released: only the coefficients, the intercept and
// noisy quality metrics are (ModelResult).
type ModelRequest struct {
	Type     string   `json:"type"`
	SQL      string   `json:"sql"`
	Features []string `json:"features"`
	Label    string   `json:"label"`
	// Bounds are [lo, hi] by feature or label name.
	Bounds map[string][]float64 `json:"bounds,omitempty"`
	// MaxRowsPerUnit is how many rows of one privacy unit the model reads at most (default 1):
	// every noise scale grows with it.
	MaxRowsPerUnit int `json:"max_rows_per_unit,omitempty"`
	// Iterations is a logistic fit's number of gradient steps (default 100).
	Iterations int `json:"iterations,omitempty"`
}

// ModelCoefficient is one released coefficient (or the intercept) in the units of its feature
// and of the label, with its interval at the result's Confidence (Lower = Upper = Value when
// the model releases no intervals).
type ModelCoefficient struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Lower float64 `json:"lower"`
	Upper float64 `json:"upper"`
}

// ModelMetrics are a released model's quality measures, every one computed from noisy values
// only: for a linear regression RMSE and R² (from the noisy sufficient statistics), for a
// logistic one the accuracy and the noisy confusion counts. N is the noisy number of rows
// the model read.
type ModelMetrics struct {
	N         float64         `json:"n"`
	RMSE      *float64        `json:"rmse,omitempty"`
	R2        *float64        `json:"r2,omitempty"`
	Accuracy  *float64        `json:"accuracy,omitempty"`
	Confusion *ModelConfusion `json:"confusion,omitempty"`
}

// ModelConfusion are noisy row counts of a logistic model by label and prediction.
type ModelConfusion struct {
	TruePositives  float64 `json:"true_positives"`
	FalsePositives float64 `json:"false_positives"`
	FalseNegatives float64 `json:"false_negatives"`
	TrueNegatives  float64 `json:"true_negatives"`
}

// ModelResult is a released model (kind model): coefficients by feature name, the intercept,
// noisy metrics, and how they were made. Never a prediction for a row.
type ModelResult struct {
	Job          string             `json:"job"`
	Type         string             `json:"type"`
	Dataset      string             `json:"dataset"`
	Label        string             `json:"label"`
	Coefficients []ModelCoefficient `json:"coefficients"`
	Intercept    ModelCoefficient   `json:"intercept"`
	Metrics      ModelMetrics       `json:"metrics"`
	// Confidence is the level of the coefficients' intervals (0: none are released). Intervals
	// says what they cover.
	Confidence float64 `json:"confidence,omitempty"`
	Intervals  string  `json:"intervals,omitempty"`
	// Bounds are the public bounds each feature and the label were clipped to.
	Bounds         map[string][]float64 `json:"bounds"`
	MaxRowsPerUnit int                  `json:"max_rows_per_unit"`
	Iterations     int                  `json:"iterations,omitempty"`
	// Ridge is λ added to the noisy XᵀX (scaled units) to make it positive definite (linear).
	Ridge      float64          `json:"ridge,omitempty"`
	Mechanism  string           `json:"mechanism"`
	Components []NoiseComponent `json:"components"`
	Spent      Budget           `json:"spent"`
	LogIndex   uint64           `json:"log_index,omitempty"`
	// Repeat is set when the job is identical to an earlier one on its grant and is answered
	// from that job's release: the same coefficients, intercept and metrics, no new noise, and
	// nothing spent (Spent is zero).
	Repeat *ModelRepeat `json:"repeat,omitempty"`
}

// ModelRepeat names the earlier job whose release answers an identical model, and what that
// job spent.
type ModelRepeat struct {
	Job   string `json:"job"`
	Spent Budget `json:"spent"`
}
