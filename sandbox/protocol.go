package sandbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// Frames on the pipe: a 4-byte big-endian length and a JSON header; a response whose header
// has Arrow set is followed by one more length-prefixed frame holding an Arrow IPC stream.
const maxFrame = 1 << 30

type request struct {
	ID       uint64        `json:"id"`
	Op       string        `json:"op"` // register, load, verify, rawset, execute, claims, model, wasm, collective_*, isolation, probe, cancel
	Register *registerArgs `json:"register,omitempty"`
	Digest   string        `json:"digest,omitempty"`
	// RawValues asks the rawset op for the set of snapshot Digest.
	RawValues *rawValuesArgs  `json:"raw_values,omitempty"`
	Plan      *wire.Plan      `json:"plan,omitempty"`
	Claims    *wire.Claims    `json:"claims,omitempty"`
	Model     *wire.ModelPass `json:"model,omitempty"`
	Wasm      *wire.Wasm      `json:"wasm,omitempty"`
	Target    string          `json:"target,omitempty"` // probe: loopback address to dial
	// The collective ops' arguments (collective.go), one set per op.
	KeyGen    *wire.CollectiveKeyGen    `json:"keygen,omitempty"`
	Accept    *wire.CollectiveAccept    `json:"accept,omitempty"`
	Input     *wire.CollectiveInput     `json:"input,omitempty"`
	KeySwitch *wire.CollectiveKeySwitch `json:"keyswitch,omitempty"`
	Cancel    uint64                    `json:"cancel,omitempty"`
}

// snapshots are the digests of the snapshots an execute, claims or model request reads, in its
// order, each once: the worker loads them before the operation's deadline starts. A wasm
// request's deadline is per block, after its rows are read, and its module is checked before
// any load: it names none.
func (r *request) snapshots() []string {
	var out []string
	add := func(d string) {
		if d != "" && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	addRelation := func(rel *wire.Relation) {
		if rel != nil {
			for _, s := range rel.Sources {
				add(s.Snapshot)
			}
		}
	}
	switch {
	case r.Op == "execute" && r.Plan != nil:
		add(r.Plan.Snapshot)
		addRelation(r.Plan.Relation)
	case r.Op == "claims" && r.Claims != nil:
		add(r.Claims.Snapshot)
	case r.Op == "model" && r.Model != nil:
		addRelation(&r.Model.Relation)
	}
	return out
}

// registerArgs describe a source the worker reads from a descriptor (src), never by path: the
// worker receives no path at all, only the file's base name for errors.
type registerArgs struct {
	Kind        string   `json:"kind"`
	Name        string   `json:"name"` // the source file's base name, for errors`
	PrivacyUnit string   `json:"privacy_unit"`
	Columns     []string `json:"columns"` // declared columns, all of which must exist
	Numeric     []string `json:"numeric"` // columns with declared bounds, which must be numeric
	// RawValues, when set, has the worker build the snapshot's raw-value set.
	RawValues *rawValuesArgs `json:"raw_values,omitempty"`

	src *os.File // the source, received on the source socket (see source_linux.go)
}

type response struct {
	ID        uint64           `json:"id"`
	Error     *wireError       `json:"error,omitempty"`
	Snapshot  *wire.Snapshot   `json:"snapshot,omitempty"`
	RawSet    *wire.RawSetInfo `json:"rawset,omitempty"`
	Isolation *wire.Isolation  `json:"isolation,omitempty"`
	Arrow     bool             `json:"arrow,omitempty"`
	// Bias are the pre-noise states of an executed plan's bounding-cost counts.
	Bias *wire.BiasStates `json:"bias,omitempty"`
	// Answers are the ciphertexts answering a claims request.
	Answers [][]byte `json:"answers,omitempty"`
	// ModelState is a model pass's pre-noise state (dp/model's encoding).
	ModelState []byte `json:"model_state,omitempty"`
	// Wasm is a custom model's pre-noise block average (never a block's own output).
	Wasm *wire.WasmResult `json:"wasm,omitempty"`
	// Collective is a collective op's answer: signed protocol messages and the domain's
	// signing public key, never a key share or an aggregate.
	Collective *wire.CollectiveReply `json:"collective,omitempty"`
}

type wireError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeFrame(w io.Writer, b []byte) error {
	var hdr [4]byte
	if len(b) > maxFrame {
		return fmt.Errorf("sandbox: frame of %d bytes exceeds the limit", len(b))
	}
	binary.BigEndian.PutUint32(hdr[:], uint32(len(b)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(b)
	return err
}

func readFrame(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxFrame {
		return nil, errors.New("sandbox: oversized frame")
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}
