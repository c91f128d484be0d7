package collective

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/multiparty"
	"github.com/tuneinsight/lattigo/v6/schemes/bgv"
)

// Party is one data domain. It holds its share of the collective secret key, which never leaves
// it except through MarshalKey into its own data directory; it encrypts only its own noisy
// aggregates and key-switches only a sum that it has recomputed from one signed input per domain
// of the job, its own unchanged among them, towards the receiver key named in the job.
type Party struct {
	mu     sync.Mutex
	name   string
	signer Config
	params Params
	v      verifier

	ceremony  string
	sk        *rlwe.SecretKey
	sentShare []byte
	pk        *rlwe.PublicKey
	pkBytes   []byte
	keyID     [32]byte

	inputs   map[string][32]byte // job id → digest of the encoded input message sent
	switched map[string]*Message // job id → the key-switch share sent (never a second one)
}

// NewParty returns a domain without a key share; run KeyGen and AcceptPublicKey, or
// UnmarshalKey a stored share.
func NewParty(c Config) (*Party, error) {
	p, err := DefaultParams()
	if err != nil {
		return nil, err
	}
	v, err := newVerifier(c, true)
	if err != nil {
		return nil, err
	}
	if !v.domains[c.Name] {
		return nil, fmt.Errorf("%w: a party must be one of the domains", ErrConfig)
	}
	return &Party{name: c.Name, signer: c, params: p, v: v, inputs: map[string][32]byte{}, switched: map[string]*Message{}}, nil
}

// Name is the domain's name.
func (p *Party) Name() string { return p.name }

// KeyID is the collective key's id (zero before the key is known).
func (p *Party) KeyID() [32]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.keyID
}

// KeyGen starts the key ceremony: it draws this domain's secret share and returns its signed CKG
// share (round 1). The common reference polynomial is derived from the ceremony id.
func (p *Party) KeyGen(ceremony string) (m *Message, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pk != nil || p.sk != nil {
		return nil, fmt.Errorf("%w: key share already exists", ErrState)
	}
	if ceremony == "" || len(ceremony) > maxName || !validName([]byte(ceremony)) {
		return nil, fmt.Errorf("%w: ceremony id", ErrConfig)
	}
	defer recoverTo(&err)
	c, err := crp(p.params, ceremony)
	if err != nil {
		return nil, err
	}
	sk := rlwe.NewKeyGenerator(p.params.bgv).GenSecretKeyNew()
	proto := multiparty.NewPublicKeyGenProtocol(p.params.bgv)
	share := proto.AllocateShare()
	proto.GenShare(sk, c, &share)
	b, err := share.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("%w: share encoding", ErrConfig)
	}
	m = &Message{Params: ParamSetName, Job: ceremony, Round: RoundKeyGen, Sender: p.name, Payload: b}
	m.sign(p.signer.SigningKey)
	p.ceremony, p.sk, p.sentShare = ceremony, sk, b
	return m, nil
}

// AcceptPublicKey checks the aggregator's collective key (round 2) — signed by the aggregator,
// carrying one signed CKG share per domain, this domain's own unchanged, and equal to the key the
// shares determine — and keeps it. Only then does the party encrypt under it.
func (p *Party) AcceptPublicKey(m *Message) (err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sk == nil || p.pk != nil {
		return fmt.Errorf("%w: no key ceremony in progress", ErrState)
	}
	defer recoverTo(&err)
	got, pk, err := verifyPublicKey(p.params, p.v, m, p.ceremony)
	if err != nil {
		return err
	}
	if !bytes.Equal(got[p.name].Payload, p.sentShare) {
		return fmt.Errorf("%w: own key share altered", ErrTampered)
	}
	p.pk, p.pkBytes, p.keyID = pk, m.Payload, KeyDigest(m.Payload)
	return nil
}

// verifyPublicKey checks a round-2 message and recomputes the key from its shares.
func verifyPublicKey(params Params, v verifier, m *Message, ceremony string) (map[string]*Message, *rlwe.PublicKey, error) {
	if err := v.check(m, ceremony, RoundPublicKey, v.aggregator); err != nil {
		return nil, nil, err
	}
	shares := map[string]multiparty.PublicKeyGenShare{}
	got, err := v.checkIncluded(m, ceremony, RoundKeyGen, func(in *Message) error {
		s, err := decodeCKGShare(params, in.Payload)
		shares[in.Sender] = s
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	pk, err := combineKey(params, v, ceremony, shares)
	if err != nil {
		return nil, nil, err
	}
	b, err := pk.MarshalBinary()
	if err != nil || !bytes.Equal(b, m.Payload) {
		return nil, nil, fmt.Errorf("%w: collective key differs from its shares", ErrTampered)
	}
	return got, pk, nil
}

func combineKey(params Params, v verifier, ceremony string, shares map[string]multiparty.PublicKeyGenShare) (*rlwe.PublicKey, error) {
	c, err := crp(params, ceremony)
	if err != nil {
		return nil, err
	}
	proto := multiparty.NewPublicKeyGenProtocol(params.bgv)
	agg := proto.AllocateShare()
	for _, n := range v.names {
		proto.AggregateShares(agg, shares[n], &agg)
	}
	pk := rlwe.NewPublicKey(params.bgv)
	proto.GenPublicKey(agg, c, pk)
	return pk, nil
}

// Encrypt adds this domain's DP noise share to each of its bounded per-partition aggregates,
// checks the range, and returns the vector encrypted under the collective key (round 3). A domain
// answers a job once; a second call for the same job id is ErrState (two noisy copies of one
// vector would halve the noise variance).
//
// Every aggregate and every noisy value must satisfy |v| ≤ Params.MaxInput(N), else ErrOutOfRange
// and nothing is sent: the sum of N such values cannot wrap around modulo t.
func (p *Party) Encrypt(job Job, aggregates []int64) (m *Message, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pk == nil {
		return nil, fmt.Errorf("%w: no collective key", ErrState)
	}
	if err := job.check(p.keyID, len(p.v.domains)); err != nil {
		return nil, err
	}
	if _, done := p.inputs[job.ID]; done {
		return nil, fmt.Errorf("%w: job already answered", ErrState)
	}
	if len(aggregates) != job.Partitions {
		return nil, fmt.Errorf("%w: aggregate vector length differs from the job's partitions", ErrConfig)
	}
	defer recoverTo(&err)
	limit := p.params.MaxInput(len(p.v.domains))
	noisy := make([]int64, job.Partitions)
	defer clear(noisy)
	for i, x := range aggregates {
		if x > limit || x < -limit {
			return nil, fmt.Errorf("%w: aggregate beyond the plaintext range", ErrOutOfRange)
		}
		y, err := addNoise(x, job.Noise)
		if err != nil {
			return nil, fmt.Errorf("%w: noise parameters refused", ErrConfig)
		}
		if y > limit || y < -limit {
			return nil, fmt.Errorf("%w: noisy aggregate beyond the plaintext range", ErrOutOfRange)
		}
		noisy[i] = y
	}
	params := p.params.bgv
	pt := bgv.NewPlaintext(params, params.MaxLevel())
	if err := bgv.NewEncoder(params).Encode(noisy, pt); err != nil {
		return nil, fmt.Errorf("%w: encoding", ErrConfig)
	}
	ct := bgv.NewCiphertext(params, 1, params.MaxLevel())
	if err := bgv.NewEncryptor(params, p.pk).Encrypt(pt, ct); err != nil {
		return nil, fmt.Errorf("%w: encryption", ErrConfig)
	}
	clear(pt.Value.Coeffs[0])
	b, err := ct.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("%w: ciphertext encoding", ErrConfig)
	}
	m = &Message{Params: ParamSetName, Job: job.ID, Round: RoundInput, Sender: p.name, KeyID: p.keyID, Partitions: uint32(job.Partitions), Payload: b}
	m.sign(p.signer.SigningKey)
	p.inputs[job.ID] = digest(m.Encode())
	return m, nil
}

// KeySwitch checks the aggregator's sum (round 4) and returns this domain's public-key-switch
// share of it towards the job's receiver key (round 5), with smudging noise of Params.FloodSigma.
// It refuses unless the message carries exactly one signed input per domain for this job, its own
// unchanged, the sum equals the sum of those inputs, and the receiver key has the job's digest.
// It produces one share per job: asked again for the same sum it returns the same message, for
// another sum ErrState (fresh shares of one ciphertext would let the flooding noise be averaged).
func (p *Party) KeySwitch(job Job, sum *Message) (m *Message, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pk == nil {
		return nil, fmt.Errorf("%w: no collective key", ErrState)
	}
	if err := job.check(p.keyID, len(p.v.domains)); err != nil {
		return nil, err
	}
	own, sent := p.inputs[job.ID]
	if !sent {
		return nil, fmt.Errorf("%w: no input sent for this job", ErrState)
	}
	defer recoverTo(&err)
	if err := p.v.check(sum, job.ID, RoundSum, p.v.aggregator); err != nil {
		return nil, err
	}
	if sum.KeyID != p.keyID || int(sum.Partitions) != job.Partitions {
		return nil, fmt.Errorf("%w: sum for another key or shape", ErrWrongJob)
	}
	if sum.Receiver != job.Receiver || KeyDigest(sum.ReceiverKey) != job.Receiver {
		return nil, fmt.Errorf("%w: receiver key is not the job's", ErrTampered)
	}
	if prev, done := p.switched[job.ID]; done {
		if prev.Subject == digest(sum.Payload) {
			return prev, nil
		}
		return nil, fmt.Errorf("%w: job already key-switched", ErrState)
	}
	sumCt, err := verifySum(p.params, p.v, sum, job)
	if err != nil {
		return nil, err
	}
	for _, in := range sum.Included {
		if in.Sender == p.name && digest(in.Encode()) != own {
			return nil, fmt.Errorf("%w: own input altered", ErrTampered)
		}
	}
	rpk, err := decodePublicKey(p.params, sum.ReceiverKey)
	if err != nil {
		return nil, err
	}
	proto, err := multiparty.NewPublicKeySwitchProtocol(p.params.bgv, p.params.floodDistribution())
	if err != nil {
		return nil, fmt.Errorf("%w: key-switch protocol", ErrConfig)
	}
	share := proto.AllocateShare(sumCt.Level())
	proto.GenShare(p.sk, rpk, sumCt, &share)
	b, err := share.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("%w: share encoding", ErrConfig)
	}
	m = &Message{Params: ParamSetName, Job: job.ID, Round: RoundKeySwitch, Sender: p.name, KeyID: p.keyID,
		Partitions: uint32(job.Partitions), Receiver: job.Receiver, Subject: digest(sum.Payload), Payload: b}
	m.sign(p.signer.SigningKey)
	p.switched[job.ID] = m
	return m, nil
}

// verifySum checks a round-4 message's inputs and that its payload is their sum.
func verifySum(params Params, v verifier, sum *Message, job Job) (*rlwe.Ciphertext, error) {
	cts := map[string]*rlwe.Ciphertext{}
	_, err := v.checkIncluded(sum, job.ID, RoundInput, func(in *Message) error {
		if in.KeyID != sum.KeyID || in.Partitions != sum.Partitions {
			return fmt.Errorf("%w: input for another key or shape", ErrWrongJob)
		}
		ct, err := decodeCiphertext(params, in.Payload)
		cts[in.Sender] = ct
		return err
	})
	if err != nil {
		return nil, err
	}
	list := make([]*rlwe.Ciphertext, 0, len(cts))
	for _, n := range v.names {
		list = append(list, cts[n])
	}
	total, err := sumCiphertexts(params, list)
	if err != nil {
		return nil, err
	}
	b, err := total.MarshalBinary()
	if err != nil || !bytes.Equal(b, sum.Payload) {
		return nil, fmt.Errorf("%w: sum differs from its inputs", ErrTampered)
	}
	return total, nil
}

// storedKey is a domain's key share at rest (JSON; byte fields in base64).
type storedKey struct {
	Version   int      `json:"version"`
	Params    string   `json:"params"`
	Domain    string   `json:"domain"`
	Ceremony  string   `json:"ceremony"`
	Domains   []string `json:"domains"`
	Secret    []byte   `json:"secret_share"`
	PublicKey []byte   `json:"collective_public_key"`
}

// MarshalKey returns this domain's secret key share and the collective public key, for storage
// in the domain's own data directory (write it with mode 0600; it is the domain's half of every
// past and future release under this key).
func (p *Party) MarshalKey() ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pk == nil {
		return nil, fmt.Errorf("%w: no collective key", ErrState)
	}
	sk, err := p.sk.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("%w: key encoding", ErrConfig)
	}
	return json.Marshal(storedKey{Version: 1, Params: ParamSetName, Domain: p.name, Ceremony: p.ceremony, Domains: p.v.names, Secret: sk, PublicKey: p.pkBytes})
}

// UnmarshalKey loads a key share written by MarshalKey into a party without one. The file must be
// this domain's, for the configured domains and parameter set.
func (p *Party) UnmarshalKey(b []byte) (err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sk != nil || p.pk != nil {
		return fmt.Errorf("%w: key share already exists", ErrState)
	}
	var s storedKey
	if json.Unmarshal(b, &s) != nil || s.Version != 1 {
		return fmt.Errorf("%w: stored key", ErrMalformed)
	}
	if s.Params != ParamSetName {
		return ErrWrongParams
	}
	if s.Domain != p.name || len(s.Domains) != len(p.v.names) {
		return fmt.Errorf("%w: stored key belongs to another domain or key", ErrConfig)
	}
	for i, n := range s.Domains {
		if n != p.v.names[i] {
			return fmt.Errorf("%w: stored key belongs to another domain or key", ErrConfig)
		}
	}
	defer recoverTo(&err)
	sk, err := decodeSecretKey(p.params, s.Secret)
	if err != nil {
		return err
	}
	pk, err := decodePublicKey(p.params, s.PublicKey)
	if err != nil {
		return err
	}
	p.ceremony, p.sk, p.pk, p.pkBytes, p.keyID = s.Ceremony, sk, pk, s.PublicKey, KeyDigest(s.PublicKey)
	return nil
}

// recoverTo turns a panic inside lattigo into ErrMalformed: inputs are validated before they reach
// lattigo, so this is a second line, not the check.
func recoverTo(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w: internal check failed", ErrMalformed)
	}
}
