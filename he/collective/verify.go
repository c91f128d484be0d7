package collective

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"sort"
)

// Directory maps every party's name (the domains and the aggregator) to its ed25519 public key.
// It is configuration, distributed out of band; a message from a name not in it is
// ErrUnknownDomain.
type Directory map[string]ed25519.PublicKey

// Config configures a Party (one domain) or the Aggregator.
type Config struct {
	// Name is this party's name in the directory (a domain name, or the aggregator's).
	Name string
	// SigningKey signs every message this party sends; its public half must be Directory[Name].
	SigningKey ed25519.PrivateKey
	// Directory holds the public keys of every domain and of the aggregator.
	Directory Directory
	// Domains are the names of the N domains that hold shares of the collective key (2 to
	// MaxParties, order irrelevant). All N take part in every job: the key is N-out-of-N.
	Domains []string
	// Aggregator is the platform's name in the directory.
	Aggregator string
}

// Job describes one cross-domain release. Every party receives it from the job's description
// (not from the aggregator's messages) and checks each message against it.
type Job struct {
	// ID is the job id, unique per release; a message for another id is ErrWrongJob.
	ID string
	// Key is the collective key's id (Party.KeyID / Aggregator.KeyID).
	Key [32]byte
	// Partitions is the length of the aggregate vector (1 to MaxPartitions); slot i is partition i.
	Partitions int
	// Receiver is the digest of the receiver's public key (Receiver.KeyDigest); domains key-switch
	// only towards the key with this digest.
	Receiver [32]byte
	// Noise is each domain's noise share, from NoiseShares for the job's budget and N domains.
	Noise ShareNoise
}

func (j Job) check(key [32]byte, parties int) error {
	var zero [32]byte
	if j.ID == "" || len(j.ID) > maxName || !validName([]byte(j.ID)) || j.Partitions < 1 || j.Partitions > MaxPartitions || j.Receiver == zero {
		return fmt.Errorf("%w: job", ErrConfig)
	}
	if j.Key != key {
		return fmt.Errorf("%w: job names another collective key", ErrWrongJob)
	}
	if err := j.Noise.validate(); err != nil {
		return err
	}
	if j.Noise.Parties != parties {
		return fmt.Errorf("%w: noise shares computed for another number of domains", ErrConfig)
	}
	return nil
}

// verifier checks messages against the directory.
type verifier struct {
	dir        Directory
	domains    map[string]bool
	aggregator map[string]bool
	names      []string // the domains, sorted
}

func newVerifier(c Config, self bool) (verifier, error) {
	v := verifier{dir: Directory{}, domains: map[string]bool{}, aggregator: map[string]bool{c.Aggregator: true}}
	bad := func(what string) (verifier, error) { return verifier{}, fmt.Errorf("%w: %s", ErrConfig, what) }
	if len(c.Domains) < 2 || len(c.Domains) > MaxParties {
		return bad("number of domains")
	}
	ok := func(n string) bool { return n != "" && len(n) <= maxName && validName([]byte(n)) }
	if !ok(c.Aggregator) {
		return bad("aggregator name")
	}
	for _, d := range c.Domains {
		if !ok(d) || v.domains[d] || d == c.Aggregator {
			return bad("domain names")
		}
		v.domains[d] = true
		v.names = append(v.names, d)
	}
	sort.Strings(v.names)
	for _, n := range append([]string{c.Aggregator}, c.Domains...) {
		k, found := c.Directory[n]
		if !found || len(k) != ed25519.PublicKeySize {
			return bad("directory lacks a party's key")
		}
		v.dir[n] = append(ed25519.PublicKey(nil), k...)
	}
	if self {
		if !ok(c.Name) || len(c.SigningKey) != ed25519.PrivateKeySize {
			return bad("own name or signing key")
		}
		pub, _ := c.SigningKey.Public().(ed25519.PublicKey)
		if !bytes.Equal(pub, v.dir[c.Name]) {
			return bad("signing key does not match the directory")
		}
	}
	return v, nil
}

// check verifies a message: its shape, that its sender is one of senders, its signature, then
// its parameter set, round and job, in this order (so a replay of a genuine message from another
// job is ErrWrongJob, and a forged one ErrBadSignature).
func (v verifier) check(m *Message, job string, round Round, senders map[string]bool) error {
	if m == nil {
		return fmt.Errorf("%w: nil message", ErrMalformed)
	}
	if err := m.shape(); err != nil {
		return err
	}
	for _, in := range m.Included {
		if in == nil || len(in.Included) != 0 {
			return fmt.Errorf("%w: nested messages", ErrMalformed)
		}
	}
	key, known := v.dir[m.Sender]
	if !known || !senders[m.Sender] {
		return fmt.Errorf("%w: sender", ErrUnknownDomain)
	}
	d := m.Digest()
	if !ed25519.Verify(key, d[:], m.Signature) {
		return ErrBadSignature
	}
	if m.Params != ParamSetName {
		return ErrWrongParams
	}
	if m.Round != round {
		return ErrWrongRound
	}
	if m.Job != job {
		return ErrWrongJob
	}
	return nil
}

// checkIncluded verifies that a combined message carries exactly one valid message per domain for
// this job and round, each passing extra; it returns them by domain.
func (v verifier) checkIncluded(m *Message, job string, round Round, extra func(*Message) error) (map[string]*Message, error) {
	got := map[string]*Message{}
	for _, in := range m.Included {
		if err := v.check(in, job, round, v.domains); err != nil {
			return nil, err
		}
		if _, dup := got[in.Sender]; dup {
			return nil, fmt.Errorf("%w: two contributions from one domain", ErrDuplicate)
		}
		if err := extra(in); err != nil {
			return nil, err
		}
		got[in.Sender] = in
	}
	if len(got) != len(v.domains) {
		return nil, fmt.Errorf("%w: a domain's contribution is absent", ErrMissingParty)
	}
	return got, nil
}

// sorted returns the messages in the order of the sorted domain names.
func (v verifier) sorted(got map[string]*Message) []*Message {
	out := make([]*Message, 0, len(got))
	for _, n := range v.names {
		out = append(out, got[n])
	}
	return out
}

// Inbox delivers encoded messages addressed to one party. An HTTP handler, a queue or a channel
// can implement it; Receive blocks until a message arrives or ctx ends.
type Inbox interface {
	Receive(ctx context.Context) ([]byte, error)
}

// MemoryInbox is an in-memory Inbox for tests and single-process use.
type MemoryInbox chan []byte

// Send delivers a copy of an encoded message.
func (m MemoryInbox) Send(p []byte) { m <- append([]byte(nil), p...) }

// Receive implements Inbox.
func (m MemoryInbox) Receive(ctx context.Context) ([]byte, error) {
	select {
	case p := <-m:
		return p, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// causeError keeps a fixed message while unwrapping to a sentinel and a cause (for errors.Is).
type causeError struct {
	msg  string
	errs []error
}

func (e *causeError) Error() string   { return e.msg }
func (e *causeError) Unwrap() []error { return e.errs }

// collect reads the inbox until every domain has sent one message accepted by accept. Any message
// that fails decoding or accept ends the round with that error; a deadline ends it with
// ErrMissingParty. An exact re-delivery of a message already accepted is ignored.
func (v verifier) collect(ctx context.Context, in Inbox, accept func(*Message) error) (map[string]*Message, error) {
	got := map[string]*Message{}
	raw := map[string][]byte{}
	for len(got) < len(v.domains) {
		p, err := in.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil, &causeError{msg: ErrMissingParty.Error() + ": deadline before every domain answered", errs: []error{ErrMissingParty, ctx.Err()}}
			}
			return nil, &causeError{msg: ErrMissingParty.Error() + ": inbox failed", errs: []error{ErrMissingParty, err}}
		}
		m, err := DecodeMessage(p)
		if err != nil {
			return nil, err
		}
		if prev, seen := raw[m.Sender]; seen && v.domains[m.Sender] {
			if bytes.Equal(prev, p) {
				continue
			}
			return nil, fmt.Errorf("%w: a domain sent two messages", ErrDuplicate)
		}
		if err := accept(m); err != nil {
			return nil, err
		}
		got[m.Sender] = m
		raw[m.Sender] = p
	}
	return got, nil
}

func digest(p []byte) [32]byte { return sha256.Sum256(p) }

var _ Inbox = MemoryInbox(nil)
