package sandbox

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/c1b99f93/cleanroom/dp"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/he/collective"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// A worker is one data domain of a federated job (he/collective, docs/he-collective.md "On
// the platform"). What it keeps in its own directory, under collective/, mode 0600, and never
// returns:
//
//	signing.key                 the domain's long-term ed25519 key (its public half is returned)
//	<ceremony>/share.json       its share of the collective secret key (Party.MarshalKey)
//	<ceremony>/config.json      the directory and domains of the ceremony
//	<ceremony>/jobs/<job>.json  per job: the digest of the input sent and the key-switch share
//
// What it returns: its signing public key, and signed protocol messages — a CKG share, and per
// job ciphertexts of its noisy aggregates and key-switch shares. Its exact aggregates never
// leave collectiveInput.

// collectiveState is the worker's parties by ceremony, loaded from its directory on first use.
type collectiveState struct {
	mu      sync.Mutex
	parties map[string]*collective.Party // ceremony → party with a key (or a ceremony under way)
}

// collectiveCeremony is a ceremony's configuration at rest.
type collectiveCeremony struct {
	Domains    []string          `json:"domains"`
	Aggregator string            `json:"aggregator"`
	Directory  map[string][]byte `json:"directory"`
}

// collectiveJob is a job's state at rest: the input sent (its digest) and the key-switch
// share sent, so that a restarted worker answers neither twice.
type collectiveJob struct {
	Input     string `json:"input"`                // sha256 of the encoded input message
	KeySwitch []byte `json:"key_switch,omitempty"` // the encoded key-switch share
	Subject   string `json:"subject,omitempty"`    // hex sha256 of the sum it switched
}

func (w *worker) collectiveDir() string { return filepath.Join(w.dir, "collective") }

// ceremonyDir is a ceremony's directory; the id is checked to be one path element.
func (w *worker) ceremonyDir(ceremony string) (string, error) {
	if ceremony == "" || len(ceremony) > 128 || strings.ContainsAny(ceremony, "/\\\x00") || ceremony == "." || ceremony == ".." {
		return "", errcode.New(errcode.Internal, "invalid ceremony id")
	}
	return filepath.Join(w.collectiveDir(), ceremony), nil
}

// signingKey loads the domain's signing key, creating it on first use.
func (w *worker) signingKey() (ed25519.PrivateKey, error) {
	path := filepath.Join(w.collectiveDir(), "signing.key")
	if b, err := os.ReadFile(path); err == nil {
		if len(b) != ed25519.SeedSize {
			return nil, errcode.New(errcode.Internal, "the domain's signing key file is damaged")
		}
		return ed25519.NewKeyFromSeed(b), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, errcode.Wrap(errcode.SandboxFailed, err, "the domain's signing key cannot be read")
	}
	if err := os.MkdirAll(w.collectiveDir(), 0o700); err != nil {
		return nil, errcode.Wrap(errcode.SandboxFailed, err, "the domain's key directory cannot be made")
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := writeNew(path, priv.Seed()); err != nil {
		if errors.Is(err, os.ErrExist) { // another request made it first
			return w.signingKey()
		}
		return nil, errcode.Wrap(errcode.SandboxFailed, err, "the domain's signing key cannot be written")
	}
	return priv, nil
}

// writeNew writes a file that must not exist yet, mode 0600, and syncs it.
func writeNew(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// writeReplace replaces a file atomically (mode 0600).
func writeReplace(path string, b []byte) error {
	tmp := path + ".tmp"
	os.Remove(tmp)
	if err := writeNew(tmp, b); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (w *worker) partyConfig(ceremony string, c collectiveCeremony) (collective.Config, error) {
	key, err := w.signingKey()
	if err != nil {
		return collective.Config{}, err
	}
	dir := collective.Directory{}
	for n, k := range c.Directory {
		dir[n] = ed25519.PublicKey(k)
	}
	return collective.Config{Name: w.domain, SigningKey: key, Directory: dir, Domains: c.Domains, Aggregator: c.Aggregator}, nil
}

// collectiveIdentity returns the domain's signing public key.
func (w *worker) collectiveIdentity() (*wire.CollectiveReply, error) {
	key, err := w.signingKey()
	if err != nil {
		return nil, err
	}
	pub, _ := key.Public().(ed25519.PublicKey)
	return &wire.CollectiveReply{SigningKey: pub}, nil
}

// collectiveKeyGen draws the domain's secret share of a new collective key and returns its
// signed CKG share. The share stays in memory until the key is accepted, then only on disk.
func (w *worker) collectiveKeyGen(a *wire.CollectiveKeyGen) (*wire.CollectiveReply, error) {
	dir, err := w.ceremonyDir(a.Ceremony)
	if err != nil {
		return nil, err
	}
	w.coll.mu.Lock()
	defer w.coll.mu.Unlock()
	if _, err := os.Stat(filepath.Join(dir, "share.json")); err == nil {
		return nil, errcode.New(errcode.Conflict, "this domain already holds a share of the collective key of ceremony %s", a.Ceremony)
	}
	c := collectiveCeremony{Domains: a.Domains, Aggregator: a.Aggregator, Directory: a.Directory}
	cfg, err := w.partyConfig(a.Ceremony, c)
	if err != nil {
		return nil, err
	}
	p, err := collective.NewParty(cfg)
	if err != nil {
		return nil, collectiveError(err)
	}
	m, err := p.KeyGen(a.Ceremony)
	if err != nil {
		return nil, collectiveError(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "jobs"), 0o700); err != nil {
		return nil, errcode.Wrap(errcode.SandboxFailed, err, "the ceremony's directory cannot be made")
	}
	b, _ := json.Marshal(c)
	if err := writeReplace(filepath.Join(dir, "config.json"), b); err != nil {
		return nil, errcode.Wrap(errcode.SandboxFailed, err, "the ceremony's configuration cannot be written")
	}
	w.coll.parties[a.Ceremony] = p
	pub, _ := cfg.SigningKey.Public().(ed25519.PublicKey)
	return &wire.CollectiveReply{SigningKey: pub, Messages: [][]byte{m.Encode()}}, nil
}

// collectiveAccept checks the aggregator's collective key (the party recomputes it from the
// signed shares and finds its own unchanged) and stores the domain's share.
func (w *worker) collectiveAccept(a *wire.CollectiveAccept) (*wire.CollectiveReply, error) {
	dir, err := w.ceremonyDir(a.Ceremony)
	if err != nil {
		return nil, err
	}
	w.coll.mu.Lock()
	defer w.coll.mu.Unlock()
	p := w.coll.parties[a.Ceremony]
	if p == nil {
		return nil, errcode.New(errcode.FederatedProtocol, "no key ceremony %s is under way in this domain", a.Ceremony)
	}
	m, err := collective.DecodeMessage(a.Message)
	if err != nil {
		return nil, collectiveError(err)
	}
	if err := p.AcceptPublicKey(m); err != nil {
		delete(w.coll.parties, a.Ceremony) // a ceremony that failed is not resumed
		return nil, collectiveError(err)
	}
	b, err := p.MarshalKey()
	if err != nil {
		return nil, collectiveError(err)
	}
	if err := writeNew(filepath.Join(dir, "share.json"), b); err != nil {
		delete(w.coll.parties, a.Ceremony)
		return nil, errcode.Wrap(errcode.SandboxFailed, err, "the domain's key share cannot be stored")
	}
	id := p.KeyID()
	return &wire.CollectiveReply{KeyID: id[:]}, nil
}

// party returns the ceremony's party with its key, loading the share from disk after a restart.
func (w *worker) party(ceremony string) (*collective.Party, string, error) {
	dir, err := w.ceremonyDir(ceremony)
	if err != nil {
		return nil, "", err
	}
	w.coll.mu.Lock()
	defer w.coll.mu.Unlock()
	if p := w.coll.parties[ceremony]; p != nil && p.KeyID() != ([32]byte{}) {
		return p, dir, nil
	}
	share, err := os.ReadFile(filepath.Join(dir, "share.json"))
	if err != nil {
		return nil, "", errcode.New(errcode.FederatedProtocol, "this domain holds no share of the collective key of ceremony %s", ceremony)
	}
	cb, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, "", errcode.Wrap(errcode.SandboxFailed, err, "the ceremony's configuration cannot be read")
	}
	var c collectiveCeremony
	if err := json.Unmarshal(cb, &c); err != nil {
		return nil, "", errcode.Wrap(errcode.SandboxFailed, err, "the ceremony's configuration is damaged")
	}
	cfg, err := w.partyConfig(ceremony, c)
	if err != nil {
		return nil, "", err
	}
	p, err := collective.NewParty(cfg)
	if err == nil {
		err = p.UnmarshalKey(share)
	}
	if err != nil {
		return nil, "", collectiveError(err)
	}
	w.coll.parties[ceremony] = p
	return p, dir, nil
}

func jobPath(dir, job string) string {
	sum := sha256.Sum256([]byte(job))
	return filepath.Join(dir, "jobs", hex.EncodeToString(sum[:16])+".json")
}

// collectiveInput runs the plan's bounding pass, reads the pre-noise integer aggregates per
// public partition, and returns each aggregate's vector with the domain's noise share,
// encrypted under the collective key. A job is answered once, across restarts: its record is
// written (O_EXCL) before any ciphertext is returned.
func (w *worker) collectiveInput(ctx context.Context, a *wire.CollectiveInput) (*wire.CollectiveReply, error) {
	p, dir, err := w.party(a.Ceremony)
	if err != nil {
		return nil, err
	}
	if a.Plan == nil || len(a.Jobs) != len(a.Plan.Aggregates) || len(a.Jobs) == 0 || len(a.Partitions) == 0 || len(a.Partitions) > collective.MaxPartitions {
		return nil, errcode.New(errcode.Internal, "a federated input needs a plan, one job per aggregate and its partitions")
	}
	if a.Plan.Bias != nil || a.Plan.Selection != nil || a.Plan.Profile != nil || len(a.Plan.Differences) > 0 || len(a.Plan.Domains) == 0 && len(a.Plan.Keys) > 0 {
		return nil, errcode.New(errcode.Internal, "a federated plan has public partitions only and nothing else to release")
	}
	for i, s := range a.Plan.Aggregates {
		if s.Kind != dp.Count && s.Kind != dp.Sum && s.Kind != dp.CountDistinct {
			return nil, errcode.New(errcode.FederatedUnsupported, "aggregate %d: only COUNT, SUM and the count of units are federated", i+1)
		}
		if a.Jobs[i].Partitions != len(a.Partitions) {
			return nil, errcode.New(errcode.Internal, "a federated job's partitions differ from the plan's")
		}
	}
	for _, j := range a.Jobs {
		if _, err := os.Stat(jobPath(dir, j.ID)); err == nil {
			return nil, errcode.New(errcode.FederatedProtocol, "this domain already answered job %s", j.ID)
		}
	}
	payload, _, err := w.executePass(ctx, a.Plan)
	if err != nil {
		return nil, err
	}
	parts, err := decodePartitions(payload, len(a.Plan.Keys), len(a.Plan.Aggregates))
	if err != nil {
		return nil, errcode.Wrap(errcode.SandboxFailed, err, "the bounding pass returned malformed states")
	}
	vectors, err := exactVectors(a.Plan.Aggregates, a.Partitions, parts)
	defer func() {
		for _, v := range vectors {
			clear(v)
		}
	}()
	if err != nil {
		return nil, err
	}
	out := &wire.CollectiveReply{}
	for i, j := range a.Jobs {
		m, err := p.Encrypt(j, vectors[i])
		if err != nil {
			return nil, collectiveError(err)
		}
		enc := m.Encode()
		sum := sha256.Sum256(enc)
		rec, _ := json.Marshal(collectiveJob{Input: hex.EncodeToString(sum[:])})
		if err := writeNew(jobPath(dir, j.ID), rec); err != nil {
			return nil, errcode.Wrap(errcode.SandboxFailed, err, "the job's record cannot be written; its input is not sent")
		}
		out.Messages = append(out.Messages, enc)
	}
	return out, nil
}

// exactVectors reads each aggregate's pre-noise integer total per partition, in the order of
// partitions (absent partitions are zero). Counts (of rows or of units) are integers; sums of integer values
// clamped to integer bounds are integers, rounded against floating-point residue.
func exactVectors(specs []dp.Spec, partitions [][]*string, parts []wire.Partition) ([][]int64, error) {
	slot := make(map[string]int, len(partitions))
	for i, k := range partitions {
		slot[wire.KeyString(k)] = i
	}
	out := make([][]int64, len(specs))
	for i := range out {
		out[i] = make([]int64, len(partitions))
	}
	for _, pt := range parts {
		i, ok := slot[wire.KeyString(pt.Key)]
		if !ok {
			return out, errcode.New(errcode.Internal, "the bounding pass returned a partition outside the public domains")
		}
		for j, s := range specs {
			c, err := s.Canonical(pt.States[j])
			if err != nil {
				return out, errcode.Wrap(errcode.SandboxFailed, err, "a pre-noise state does not decode")
			}
			// Counts and sums carry Sum; the count of units (small-group suppression) Count.
			var st struct{ Sum, Count float64 }
			if err := json.Unmarshal(c, &st); err != nil {
				return out, errcode.Wrap(errcode.SandboxFailed, err, "a pre-noise state does not decode")
			}
			if s.Kind == dp.CountDistinct {
				st.Sum = st.Count
			}
			if math.IsNaN(st.Sum) || math.Abs(st.Sum) > 1<<53 {
				return out, errcode.New(errcode.FederatedUnsupported, "an aggregate is beyond the integers the protocol carries exactly")
			}
			out[j][i] = int64(math.Round(st.Sum))
		}
	}
	return out, nil
}

// collectiveKeySwitch checks each sum (the party recomputes it from the signed inputs and
// finds its own unchanged) and returns its key-switch shares towards the job's receiver. A
// job's share is recorded before it is returned; asked again, the recorded share is returned
// for the same sum and nothing for another.
func (w *worker) collectiveKeySwitch(a *wire.CollectiveKeySwitch) (*wire.CollectiveReply, error) {
	p, dir, err := w.party(a.Ceremony)
	if err != nil {
		return nil, err
	}
	if len(a.Sums) != len(a.Jobs) || len(a.Jobs) == 0 {
		return nil, errcode.New(errcode.Internal, "a key switch needs one sum per job")
	}
	out := &wire.CollectiveReply{}
	for i, j := range a.Jobs {
		path := jobPath(dir, j.ID)
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, errcode.New(errcode.FederatedProtocol, "this domain sent no input for job %s", j.ID)
		}
		var rec collectiveJob
		if err := json.Unmarshal(b, &rec); err != nil {
			return nil, errcode.Wrap(errcode.SandboxFailed, err, "the job's record is damaged")
		}
		sum, err := collective.DecodeMessage(a.Sums[i])
		if err != nil {
			return nil, collectiveError(err)
		}
		subject := sha256.Sum256(sum.Payload)
		if rec.KeySwitch != nil {
			if rec.Subject == hex.EncodeToString(subject[:]) {
				out.Messages = append(out.Messages, rec.KeySwitch)
				continue
			}
			return nil, errcode.New(errcode.FederatedProtocol, "this domain already key-switched another sum for job %s", j.ID)
		}
		m, err := p.KeySwitch(j, sum)
		if err != nil {
			return nil, collectiveError(err)
		}
		rec.KeySwitch, rec.Subject = m.Encode(), hex.EncodeToString(subject[:])
		nb, _ := json.Marshal(rec)
		if err := writeReplace(path, nb); err != nil {
			return nil, errcode.Wrap(errcode.SandboxFailed, err, "the job's record cannot be written; its share is not sent")
		}
		out.Messages = append(out.Messages, rec.KeySwitch)
	}
	return out, nil
}

// collectiveError maps he/collective's sentinels to codes; their text holds no value.
func collectiveError(err error) error {
	switch {
	case errors.Is(err, collective.ErrOutOfRange):
		return errcode.Wrap(errcode.FederatedUnsupported, err, "an aggregate is beyond the range the collective key's plaintexts hold")
	case errors.Is(err, collective.ErrConfig):
		return errcode.Wrap(errcode.Internal, err, "the federated job's parameters were refused (%s)", err.Error())
	}
	return errcode.Wrap(errcode.FederatedProtocol, err, "a protocol message was refused (%s)", err.Error())
}

// collective dispatches the collective ops that carry arguments.
func (w *worker) collective(ctx context.Context, req *request) (*wire.CollectiveReply, error) {
	missing := errcode.New(errcode.Internal, "%s without arguments", req.Op)
	switch req.Op {
	case "collective_keygen":
		if req.KeyGen == nil {
			return nil, missing
		}
		return w.collectiveKeyGen(req.KeyGen)
	case "collective_accept":
		if req.Accept == nil {
			return nil, missing
		}
		return w.collectiveAccept(req.Accept)
	case "collective_input":
		if req.Input == nil {
			return nil, missing
		}
		return w.collectiveInput(ctx, req.Input)
	case "collective_keyswitch":
		if req.KeySwitch == nil {
			return nil, missing
		}
		return w.collectiveKeySwitch(req.KeySwitch)
	}
	return nil, missing
}
