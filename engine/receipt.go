package engine

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/c1b99f93/cleanroom/engine/plan"
	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/server/api"
)

// receiptHeader is the first line of a receipt's signed text; the second is the canonical
// JSON of the ReceiptBody.
const receiptHeader = "cleanroom release receipt v1"

// ReceiptBody is what a release receipt states, signed by the platform key: this job's output
// with this digest was released under this grant at this cost, and the release record at
// LogIndex is in the log whose signed checkpoint is Checkpoint (Inclusion proves it). A third
// party checks it offline with the platform's public key (VerifyReceipt).
type ReceiptBody struct {
	Job          string             `json:"job"`
	Grant        string             `json:"grant"`
	OutputDigest string             `json:"output_digest"`
	Spent        plan.Cost          `json:"spent"`
	Mechanisms   []ReceiptMechanism `json:"mechanisms"`
	LogIndex     uint64             `json:"log_index"`
	Record       string             `json:"release_record"` // the release entry's exact line
	Checkpoint   string             `json:"checkpoint"`     // the signed checkpoint note
	Inclusion    []string           `json:"inclusion"`      // base64 RFC 6962 proof hashes
	Reviewers    []string           `json:"reviewers,omitempty"`
}

// ReceiptMechanism is how one output column was noised.
type ReceiptMechanism struct {
	Column    string  `json:"column"`
	Mechanism string  `json:"mechanism"`
	Epsilon   float64 `json:"epsilon"`
	Delta     float64 `json:"delta"`
}

// receipt signs the receipt of a SQL job's release.
func (e *Engine) receipt(ctx context.Context, grant string, res *Result, digest string, reviewers []string) ([]byte, error) {
	return e.signReceipt(ctx, ReceiptBody{Job: res.Job, Grant: grant, OutputDigest: digest, Spent: plan.Cost(res.Spent), Mechanisms: receiptMechanisms(res),
		LogIndex: res.LogIndex, Reviewers: reviewers})
}

// signReceipt checkpoints the log so the release record at body.LogIndex is covered, adds the
// record, the checkpoint and the inclusion proof to body, and signs it.
func (e *Engine) signReceipt(ctx context.Context, body ReceiptBody) ([]byte, error) {
	cp, err := e.log.Checkpoint(ctx)
	if err != nil {
		return nil, errcode.Wrap(errcode.ProvenanceFailed, err, "the provenance log could not be checkpointed")
	}
	proof, err := e.log.InclusionProof(body.LogIndex, cp.Size)
	if err != nil {
		return nil, errcode.Wrap(errcode.ProvenanceFailed, err, "the release record's inclusion could not be proved")
	}
	line, err := e.log.Line(body.LogIndex)
	if err != nil {
		return nil, errcode.Wrap(errcode.ProvenanceFailed, err, "the release record could not be read back")
	}
	body.Record, body.Checkpoint = string(line), string(cp.Note)
	for _, h := range proof {
		body.Inclusion = append(body.Inclusion, base64.StdEncoding.EncodeToString(h[:]))
	}
	b, err := provenance.Canonical(body)
	if err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the receipt could not be encoded")
	}
	signed, err := e.platformKey.SignNote([]byte(receiptHeader + "\n" + string(b) + "\n"))
	if err != nil {
		return nil, errcode.Wrap(errcode.Internal, err, "the receipt could not be signed")
	}
	return signed, nil
}

func receiptMechanisms(res *Result) []ReceiptMechanism {
	out := []ReceiptMechanism{}
	if len(res.Rows) == 0 {
		return out
	}
	for i, c := range res.Rows[0] {
		if c.DP != nil && i < len(res.Columns) {
			out = append(out, ReceiptMechanism{Column: res.Columns[i].Name, Mechanism: c.DP.Mechanism, Epsilon: c.DP.Epsilon, Delta: c.DP.Delta})
		}
	}
	return out
}

// VerifyReceipt checks a release receipt offline with the platform's public verifier key only:
// the receipt's signature; the checkpoint's signature and format; that the release record is
// in the checkpointed tree at its index (RFC 6962 inclusion); that the record is the release of
// this job with this output digest; and, when result is not nil, that result (the released
// Result as JSON) is exactly that output. It returns the verified statement.
func VerifyReceipt(receipt, result []byte, verifierKey string) (*ReceiptBody, error) {
	text, err := provenance.VerifyNote(receipt, verifierKey)
	if err != nil {
		return nil, fmt.Errorf("receipt: %w", err)
	}
	header, rest, _ := bytes.Cut(text, []byte("\n"))
	if string(header) != receiptHeader {
		return nil, errors.New("receipt: not a cleanroom release receipt")
	}
	var body ReceiptBody
	dec := json.NewDecoder(bytes.NewReader(rest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return nil, fmt.Errorf("receipt: body: %w", err)
	}
	cp, err := provenance.ParseCheckpoint([]byte(body.Checkpoint), verifierKey)
	if err != nil {
		return nil, fmt.Errorf("receipt: checkpoint: %w", err)
	}
	proof := make(tlog.RecordProof, len(body.Inclusion))
	for i, s := range body.Inclusion {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) != len(tlog.Hash{}) {
			return nil, errors.New("receipt: inclusion proof: a hash is not base64 of 32 bytes")
		}
		copy(proof[i][:], b)
	}
	if err := provenance.CheckInclusion(proof, cp.Size, cp.Root, body.LogIndex, []byte(body.Record)); err != nil {
		return nil, fmt.Errorf("receipt: the release record is not in the checkpointed log: %w", err)
	}
	var ent struct {
		Index  uint64 `json:"index"`
		Record struct {
			Type string `json:"type"`
			Job  string `json:"job"`
			Data struct {
				OutputDigest string `json:"output_digest"`
			} `json:"data"`
		} `json:"record"`
	}
	if err := json.Unmarshal([]byte(body.Record), &ent); err != nil {
		return nil, fmt.Errorf("receipt: release record: %w", err)
	}
	if ent.Index != body.LogIndex || ent.Record.Type != "release" || ent.Record.Job != body.Job || ent.Record.Data.OutputDigest != body.OutputDigest {
		return nil, errors.New("receipt: the logged record is not the release of this job with this output digest")
	}
	if result != nil {
		job, index, digest, err := releasedDigest(result)
		if err != nil {
			return nil, err
		}
		if job != body.Job || index != body.LogIndex {
			return nil, errors.New("receipt: the result is another job's or another release's")
		}
		if digest != body.OutputDigest {
			return nil, errors.New("receipt: the result is not the released output (its digest differs)")
		}
	}
	return &body, nil
}

// releasedDigest reads a released result — a SQL Result, a verification's VerifyResult (it
// has a parameter set), a ModelResult (it has coefficients) or a custom model's WasmResult
// (it has a module digest) — and returns its job, its
// release's log index, and the digest of the result as released, before it carried its index.
func releasedDigest(result []byte) (job string, index uint64, digest string, err error) {
	var kind struct {
		ParameterSet string          `json:"parameter_set"`
		ModuleDigest string          `json:"module_digest"`
		Coefficients json.RawMessage `json:"coefficients"`
	}
	if err := json.Unmarshal(result, &kind); err != nil {
		return "", 0, "", fmt.Errorf("receipt: result: %w", err)
	}
	switch {
	case kind.ModuleDigest != "": // a custom model's output (kind wasm)
		return digestWithoutIndex(result, func(r *api.WasmResult) (string, *uint64) { return r.Job, &r.LogIndex })
	case kind.Coefficients != nil: // a model (kind model)
		return digestWithoutIndex(result, func(r *api.ModelResult) (string, *uint64) { return r.Job, &r.LogIndex })
	case kind.ParameterSet != "": // a verification (kind verify)
		return digestWithoutIndex(result, func(r *api.VerifyResult) (string, *uint64) { return r.Job, &r.LogIndex })
	}
	var res Result
	if err := json.Unmarshal(result, &res); err != nil {
		return "", 0, "", fmt.Errorf("receipt: result: %w", err)
	}
	job, index, res.LogIndex = res.Job, res.LogIndex, 0
	_, digest, err = outputDigest(&res)
	return job, index, digest, err
}

// digestWithoutIndex decodes a released document of type T and returns its job, its log index
// and the digest of its canonical form without the index (as the release record names it).
func digestWithoutIndex[T any](result []byte, fields func(*T) (string, *uint64)) (job string, index uint64, digest string, err error) {
	var res T
	if err := json.Unmarshal(result, &res); err != nil {
		return "", 0, "", fmt.Errorf("receipt: result: %w", err)
	}
	job, idx := fields(&res)
	index, *idx = *idx, 0
	out, err := provenance.Canonical(&res)
	if err != nil {
		return "", 0, "", err
	}
	return job, index, sha(out), nil
}
