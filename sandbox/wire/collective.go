package wire

import "github.com/c1b99f93/cleanroom/he/collective"

// The collective ops make a worker one data domain of a cross-domain aggregation
// (he/collective): the worker holds the domain's long-term signing key and its share of the
// collective secret key in its own directory and never returns either; what it returns is
// signed protocol messages (he/collective's encoding) and its signing public key.

// CollectiveKeyGen asks the worker for its CKG share of a key ceremony (round 1).
type CollectiveKeyGen struct {
	// Ceremony names the key: one per set of domains (he/collective's ceremony id).
	Ceremony string `json:"ceremony"`
	// Domains are the N domains holding shares; Aggregator is the platform's name.
	Domains    []string `json:"domains"`
	Aggregator string   `json:"aggregator"`
	// Directory holds every domain's and the aggregator's ed25519 public key, by name.
	Directory map[string][]byte `json:"directory"`
}

// CollectiveAccept hands the worker the aggregator's collective key message (round 2).
type CollectiveAccept struct {
	Ceremony string `json:"ceremony"`
	Message  []byte `json:"message"`
}

// CollectiveInput asks the worker for its encrypted inputs to one federated job (round 3): it
// runs Plan's bounding pass on its snapshot, reads each aggregate's pre-noise per-partition
// integer in the order of Partitions, and encrypts each aggregate's vector with its noise
// share under Jobs[i] (one collective job per aggregate of the plan).
type CollectiveInput struct {
	Ceremony string `json:"ceremony"`
	Plan     *Plan  `json:"plan"`
	// Partitions are the public partitions' keys in slot order; absent ones encode zero.
	Partitions [][]*string      `json:"partitions"`
	Jobs       []collective.Job `json:"jobs"`
}

// CollectiveKeySwitch hands the worker the aggregator's sums (round 4), one per job, for its
// key-switch shares (round 5).
type CollectiveKeySwitch struct {
	Ceremony string           `json:"ceremony"`
	Jobs     []collective.Job `json:"jobs"`
	Sums     [][]byte         `json:"sums"`
}

// CollectiveReply is a collective op's answer: the worker's signing public key (identity,
// keygen), and its signed messages, one per job (or one CKG share).
type CollectiveReply struct {
	SigningKey []byte   `json:"signing_key,omitempty"`
	Messages   [][]byte `json:"messages,omitempty"`
	KeyID      []byte   `json:"key_id,omitempty"`
}
