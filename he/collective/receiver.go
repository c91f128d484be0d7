package collective

import (
	"encoding/json"
	"fmt"

	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/multiparty"
	"github.com/tuneinsight/lattigo/v6/schemes/bgv"
)

// Receiver is the party that learns the released noisy total: the applicant or the platform. Its
// key pair is fresh per receiver; it decrypts only a sum that every domain key-switched to its key,
// and each total it returns is the sum of the domains' noisy aggregates.
type Receiver struct {
	params Params
	v      verifier
	sk     *rlwe.SecretKey
	pk     []byte
}

// NewReceiver draws a fresh key pair. c.Name and c.SigningKey are not used (the receiver sends
// nothing); c.Directory, c.Domains and c.Aggregator are.
func NewReceiver(c Config) (r *Receiver, err error) {
	p, err := DefaultParams()
	if err != nil {
		return nil, err
	}
	v, err := newVerifier(c, false)
	if err != nil {
		return nil, err
	}
	defer recoverTo(&err)
	sk, pk := rlwe.NewKeyGenerator(p.bgv).GenKeyPairNew()
	b, err := pk.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("%w: key encoding", ErrConfig)
	}
	return &Receiver{params: p, v: v, sk: sk, pk: b}, nil
}

// storedReceiverKey is a receiver's key pair at rest (JSON; byte fields in base64).
type storedReceiverKey struct {
	Version   int    `json:"version"`
	Params    string `json:"params"`
	Secret    []byte `json:"secret_key"`
	PublicKey []byte `json:"public_key"`
}

// MarshalKey returns the receiver's key pair, so that a receiver that submits its public key with a
// job can open the result in a later process. Keep it as secret as the result it opens.
func (r *Receiver) MarshalKey() ([]byte, error) {
	sk, err := r.sk.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("%w: key encoding", ErrConfig)
	}
	return json.Marshal(storedReceiverKey{Version: 1, Params: ParamSetName, Secret: sk, PublicKey: r.pk})
}

// LoadReceiver restores a receiver from MarshalKey's output.
func LoadReceiver(c Config, b []byte) (r *Receiver, err error) {
	p, err := DefaultParams()
	if err != nil {
		return nil, err
	}
	v, err := newVerifier(c, false)
	if err != nil {
		return nil, err
	}
	var s storedReceiverKey
	if json.Unmarshal(b, &s) != nil || s.Version != 1 {
		return nil, fmt.Errorf("%w: stored key", ErrMalformed)
	}
	if s.Params != ParamSetName {
		return nil, ErrWrongParams
	}
	defer recoverTo(&err)
	sk, err := decodeSecretKey(p, s.Secret)
	if err != nil {
		return nil, err
	}
	if _, err := decodePublicKey(p, s.PublicKey); err != nil {
		return nil, err
	}
	return &Receiver{params: p, v: v, sk: sk, pk: s.PublicKey}, nil
}

// PublicKey is the marshalled public key to hand to the aggregator (CollectInputs).
func (r *Receiver) PublicKey() []byte { return append([]byte(nil), r.pk...) }

// KeyDigest is the value for Job.Receiver.
func (r *Receiver) KeyDigest() [32]byte { return KeyDigest(r.pk) }

// Open verifies the aggregator's result (round 6) — one signed key-switch share per domain, each
// for this job, this key and this very sum — combines the shares, decrypts and returns the noisy
// totals, one per partition. A total beyond N·Params.MaxInput(N) cannot come from valid inputs and
// is ErrOutOfRange; nothing is returned on any error.
func (r *Receiver) Open(job Job, res *Message) (totals []int64, err error) {
	if err := job.check(job.Key, len(r.v.domains)); err != nil {
		return nil, err
	}
	defer recoverTo(&err)
	if err := r.v.check(res, job.ID, RoundResult, r.v.aggregator); err != nil {
		return nil, err
	}
	if res.KeyID != job.Key || int(res.Partitions) != job.Partitions {
		return nil, fmt.Errorf("%w: result for another key or shape", ErrWrongJob)
	}
	if res.Receiver != job.Receiver || job.Receiver != r.KeyDigest() {
		return nil, fmt.Errorf("%w: result for another receiver", ErrWrongJob)
	}
	ct, err := decodeCiphertext(r.params, res.Payload)
	if err != nil {
		return nil, err
	}
	subject := digest(res.Payload)
	shares := map[string]multiparty.PublicKeySwitchShare{}
	if _, err := r.v.checkIncluded(res, job.ID, RoundKeySwitch, func(in *Message) error {
		if in.KeyID != job.Key || in.Partitions != res.Partitions || in.Receiver != res.Receiver || in.Subject != subject {
			return fmt.Errorf("%w: key-switch share for another sum", ErrWrongJob)
		}
		s, err := decodePCKSShare(r.params, in.Payload)
		shares[in.Sender] = s
		return err
	}); err != nil {
		return nil, err
	}
	list := make([]multiparty.PublicKeySwitchShare, 0, len(shares))
	for _, n := range r.v.names {
		list = append(list, shares[n])
	}
	return r.decrypt(ct, list, job.Partitions)
}

// decrypt combines key-switch shares, decrypts and checks the range; with fewer than all N shares
// the result is garbage (see TestFewerThanAllSharesCannotDecrypt).
func (r *Receiver) decrypt(ct *rlwe.Ciphertext, shares []multiparty.PublicKeySwitchShare, partitions int) ([]int64, error) {
	vals, err := r.decryptUnchecked(ct, shares)
	if err != nil {
		return nil, err
	}
	n := len(r.v.domains)
	limit := int64(n) * r.params.MaxInput(n)
	for _, v := range vals[:partitions] {
		if v > limit || v < -limit {
			return nil, fmt.Errorf("%w: decrypted total beyond what valid inputs give", ErrOutOfRange)
		}
	}
	// Domains encode zeros beyond the job's partitions, and the decryption is exact, so a non-zero
	// unused slot means the shares or the sum were not what the domains sent.
	for _, v := range vals[partitions:] {
		if v != 0 {
			return nil, fmt.Errorf("%w: unused slots are not zero", ErrTampered)
		}
	}
	return vals[:partitions:partitions], nil
}

func (r *Receiver) decryptUnchecked(ct *rlwe.Ciphertext, shares []multiparty.PublicKeySwitchShare) ([]int64, error) {
	params := r.params.bgv
	proto, err := multiparty.NewPublicKeySwitchProtocol(params, r.params.floodDistribution())
	if err != nil {
		return nil, fmt.Errorf("%w: key-switch protocol", ErrConfig)
	}
	agg := proto.AllocateShare(ct.Level())
	for _, s := range shares {
		if err := proto.AggregateShares(agg, s, &agg); err != nil {
			return nil, fmt.Errorf("%w: key-switch share", ErrMalformed)
		}
	}
	out := bgv.NewCiphertext(params, 1, ct.Level())
	proto.KeySwitch(ct, agg, out)
	pt := bgv.NewDecryptor(params, r.sk).DecryptNew(out)
	vals := make([]int64, params.MaxSlots())
	if err := bgv.NewEncoder(params).Decode(pt, vals); err != nil {
		return nil, fmt.Errorf("%w: decoding", ErrMalformed)
	}
	return vals, nil
}
