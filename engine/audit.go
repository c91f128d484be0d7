package engine

import (
	"context"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/c1b99f93/cleanroom/engine/provenance"
	"github.com/c1b99f93/cleanroom/errcode"
)

// Audit is the auditor's view of the provenance log: records, signed checkpoints and the
// proofs an auditor checks offline against the platform's verifier key. It writes nothing but
// checkpoints (signed heads of what is already written), so a front door holding it cannot
// append to or rewrite the log.
type Audit struct{ e *Engine }

// Audit returns the engine's audit facet.
func (e *Engine) Audit() Audit { return Audit{e} }

// JobAudit is a job's records with what proves them: the latest checkpoint and, for each record
// it covers, the record's line and its inclusion proof (empty for a record written after it).
type JobAudit struct {
	Records    []provenance.Entry
	Checkpoint *provenance.Checkpoint // nil while the log has none
	Lines      [][]byte
	Inclusion  [][]tlog.Hash
}

// Job returns every record of job (a job, a red-team report, a governance decision: whatever
// was recorded under that id), with proofs against the latest checkpoint.
func (a Audit) Job(id string) (JobAudit, error) {
	var out JobAudit
	ents, err := provenance.ReadJob(a.e.logPath, id)
	if err != nil {
		return out, errcode.Wrap(errcode.Internal, err, "the provenance log could not be read")
	}
	out.Records = ents
	cp, ok := a.e.log.LatestCheckpoint()
	if !ok {
		return out, nil
	}
	out.Checkpoint = &cp
	for _, ent := range ents {
		var hashes []tlog.Hash
		var line []byte
		if ent.Index < cp.Size {
			proof, err := a.e.log.InclusionProof(ent.Index, cp.Size)
			if err != nil {
				return out, errcode.Wrap(errcode.Internal, err, "an inclusion proof could not be made")
			}
			hashes = proof
			if line, err = a.e.log.Line(ent.Index); err != nil {
				return out, errcode.Wrap(errcode.Internal, err, "the provenance log could not be read")
			}
		}
		out.Lines = append(out.Lines, line)
		out.Inclusion = append(out.Inclusion, hashes)
	}
	return out, nil
}

// Records returns the entries whose record type and job keep accepts, in log order, verifying
// the chain on the way (provenance.Read).
func (a Audit) Records(keep func(typ, job string) bool) ([]provenance.Entry, error) {
	return provenance.Read(a.e.logPath, keep)
}

// Checkpoint returns the latest signed checkpoint, signing one first if the log grew since.
func (a Audit) Checkpoint(ctx context.Context) (provenance.Checkpoint, error) {
	return a.e.log.Checkpoint(ctx)
}

// InclusionProof proves that the record at Index is in the tree of Size records whose root is Root.
type InclusionProof struct {
	Index, Size uint64
	Root        tlog.Hash
	Line        []byte
	Hashes      []tlog.Hash
}

// Inclusion proves record index in the tree of size records. An index or size beyond the log
// is an error wrapping provenance.ErrOutOfRange.
func (a Audit) Inclusion(index, size uint64) (InclusionProof, error) {
	p := InclusionProof{Index: index, Size: size}
	var err error
	if p.Hashes, err = a.e.log.InclusionProof(index, size); err != nil {
		return p, err
	}
	if p.Root, err = a.e.log.TreeHead(size); err != nil {
		return p, err
	}
	p.Line, err = a.e.log.Line(index)
	return p, err
}

// ConsistencyProof proves that the tree of Old records is a prefix of the tree of New records.
type ConsistencyProof struct {
	Old, New         uint64
	OldRoot, NewRoot tlog.Hash
	Hashes           []tlog.Hash
}

// Consistency proves that the first oldSize records are a prefix of the first newSize. A size
// beyond the log, or out of order, is an error wrapping provenance.ErrOutOfRange.
func (a Audit) Consistency(oldSize, newSize uint64) (ConsistencyProof, error) {
	p := ConsistencyProof{Old: oldSize, New: newSize}
	var err error
	if p.Hashes, err = a.e.log.ConsistencyProof(oldSize, newSize); err != nil {
		return p, err
	}
	if p.OldRoot, err = a.e.log.TreeHead(oldSize); err != nil {
		return p, err
	}
	p.NewRoot, err = a.e.log.TreeHead(newSize)
	return p, err
}

// Verify checks the whole log: hash chain, Merkle tree and every signed checkpoint.
func (a Audit) Verify() (provenance.VerifyReport, error) { return a.e.VerifyLog() }

// PublicKey is the platform's verifier key (C2SP note form).
func (a Audit) PublicKey() string { return a.e.PublicKey() }
