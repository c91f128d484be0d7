package collective

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"sync"

	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/multiparty"
)

// Aggregator is the platform. It holds no key share: it sums CKG shares into the collective key,
// adds the domains' ciphertexts and forwards key-switch shares, and every message it sends carries
// the signed contributions it combined so that domains and receiver can check its work. What it
// sees — CKG shares, ciphertexts under the collective key, key-switch shares that are encryptions
// under the receiver's key — reveals no domain's aggregate.
//
// The collect methods of different jobs may run concurrently, each with its own Inbox.
// Each Collect method reads one round from an Inbox and fails, returning no message, on the first
// message that does not verify or at the context deadline (ErrMissingParty): the job then ends
// without any decryption.
type Aggregator struct {
	mu      sync.Mutex
	name    string
	key     ed25519.PrivateKey
	params  Params
	v       verifier
	pk      []byte
	keyID   [32]byte
	keyDone bool
}

// NewAggregator returns the platform's aggregator; c.Name must equal c.Aggregator.
func NewAggregator(c Config) (*Aggregator, error) {
	p, err := DefaultParams()
	if err != nil {
		return nil, err
	}
	v, err := newVerifier(c, true)
	if err != nil {
		return nil, err
	}
	if c.Name != c.Aggregator {
		return nil, fmt.Errorf("%w: the aggregator's name must be Config.Aggregator", ErrConfig)
	}
	if _, err := templates(p); err != nil {
		return nil, err
	}
	return &Aggregator{name: c.Name, key: c.SigningKey, params: p, v: v}, nil
}

// KeyID is the collective key's id (zero before the key is known).
func (a *Aggregator) KeyID() [32]byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.keyID
}

// CollectKeyGen reads one CKG share per domain (round 1) for the ceremony and returns the signed
// collective key (round 2) to broadcast to every domain.
func (a *Aggregator) CollectKeyGen(ctx context.Context, ceremony string, in Inbox) (m *Message, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.keyDone {
		return nil, fmt.Errorf("%w: collective key already exists", ErrState)
	}
	defer recoverTo(&err)
	shares := map[string]multiparty.PublicKeyGenShare{}
	got, err := a.v.collect(ctx, in, func(m *Message) error {
		if err := a.v.check(m, ceremony, RoundKeyGen, a.v.domains); err != nil {
			return err
		}
		s, err := decodeCKGShare(a.params, m.Payload)
		shares[m.Sender] = s
		return err
	})
	if err != nil {
		return nil, err
	}
	pk, err := combineKey(a.params, a.v, ceremony, shares)
	if err != nil {
		return nil, err
	}
	b, err := pk.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("%w: key encoding", ErrConfig)
	}
	m = &Message{Params: ParamSetName, Job: ceremony, Round: RoundPublicKey, Sender: a.name, Payload: b, Included: a.v.sorted(got)}
	m.sign(a.key)
	a.pk, a.keyID, a.keyDone = b, KeyDigest(b), true
	return m, nil
}

// UsePublicKey loads a collective key message this aggregator signed earlier (after a restart); it
// is verified as a domain would verify it.
func (a *Aggregator) UsePublicKey(m *Message) (err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.keyDone {
		return fmt.Errorf("%w: collective key already exists", ErrState)
	}
	defer recoverTo(&err)
	if m == nil {
		return fmt.Errorf("%w: nil message", ErrMalformed)
	}
	if _, _, err := verifyPublicKey(a.params, a.v, m, m.Job); err != nil {
		return err
	}
	a.pk, a.keyID, a.keyDone = m.Payload, KeyDigest(m.Payload), true
	return nil
}

// jobKey checks a job against the collective key without holding the lock during a round, so
// that rounds of different jobs can run concurrently.
func (a *Aggregator) jobKey(job Job) ([32]byte, error) {
	a.mu.Lock()
	keyID, done := a.keyID, a.keyDone
	a.mu.Unlock()
	if !done {
		return keyID, fmt.Errorf("%w: no collective key", ErrState)
	}
	return keyID, job.check(keyID, len(a.v.domains))
}

// CollectInputs reads one encrypted input per domain (round 3) for the job, adds them, and returns
// the signed sum with the inputs and the receiver's public key (round 4) to broadcast to every
// domain. receiverKey is the marshalled public key whose digest is job.Receiver.
func (a *Aggregator) CollectInputs(ctx context.Context, job Job, receiverKey []byte, in Inbox) (m *Message, err error) {
	keyID, err := a.jobKey(job)
	if err != nil {
		return nil, err
	}
	if KeyDigest(receiverKey) != job.Receiver {
		return nil, fmt.Errorf("%w: receiver key is not the job's", ErrConfig)
	}
	defer recoverTo(&err)
	if _, err := decodePublicKey(a.params, receiverKey); err != nil {
		return nil, err
	}
	cts := map[string]*rlwe.Ciphertext{}
	got, err := a.v.collect(ctx, in, func(m *Message) error {
		if err := a.v.check(m, job.ID, RoundInput, a.v.domains); err != nil {
			return err
		}
		if m.KeyID != keyID || int(m.Partitions) != job.Partitions {
			return fmt.Errorf("%w: input for another key or shape", ErrWrongJob)
		}
		ct, err := decodeCiphertext(a.params, m.Payload)
		cts[m.Sender] = ct
		return err
	})
	if err != nil {
		return nil, err
	}
	list := make([]*rlwe.Ciphertext, 0, len(cts))
	for _, n := range a.v.names {
		list = append(list, cts[n])
	}
	total, err := sumCiphertexts(a.params, list)
	if err != nil {
		return nil, err
	}
	b, err := total.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("%w: ciphertext encoding", ErrConfig)
	}
	m = &Message{Params: ParamSetName, Job: job.ID, Round: RoundSum, Sender: a.name, KeyID: keyID,
		Partitions: uint32(job.Partitions), Receiver: job.Receiver, Payload: b,
		ReceiverKey: append([]byte(nil), receiverKey...), Included: a.v.sorted(got)}
	m.sign(a.key)
	return m, nil
}

// CollectKeySwitch reads one key-switch share per domain (round 5) for the sum it sent, and
// returns the signed result (round 6) for the receiver: the sum and every share.
func (a *Aggregator) CollectKeySwitch(ctx context.Context, job Job, sum *Message, in Inbox) (m *Message, err error) {
	keyID, err := a.jobKey(job)
	if err != nil {
		return nil, err
	}
	defer recoverTo(&err)
	if err := a.v.check(sum, job.ID, RoundSum, map[string]bool{a.name: true}); err != nil {
		return nil, err
	}
	subject := digest(sum.Payload)
	got, err := a.v.collect(ctx, in, func(m *Message) error {
		if err := a.v.check(m, job.ID, RoundKeySwitch, a.v.domains); err != nil {
			return err
		}
		if m.KeyID != keyID || int(m.Partitions) != job.Partitions || m.Receiver != job.Receiver || m.Subject != subject {
			return fmt.Errorf("%w: key-switch share for another sum", ErrWrongJob)
		}
		_, err := decodePCKSShare(a.params, m.Payload)
		return err
	})
	if err != nil {
		return nil, err
	}
	m = &Message{Params: ParamSetName, Job: job.ID, Round: RoundResult, Sender: a.name, KeyID: keyID,
		Partitions: uint32(job.Partitions), Receiver: job.Receiver, Payload: sum.Payload, Included: a.v.sorted(got)}
	m.sign(a.key)
	return m, nil
}
