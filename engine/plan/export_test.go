package plan

// AbsError exposes the chooser's per-cell error model to the external tests.
var AbsError = absError
