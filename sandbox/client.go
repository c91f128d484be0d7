package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/c1b99f93/cleanroom/catalog"
	"github.com/c1b99f93/cleanroom/errcode"
	"github.com/c1b99f93/cleanroom/rawset"
	"github.com/c1b99f93/cleanroom/sandbox/wire"
)

// WorkerArg is the first argument that starts a program as a sandbox worker: the client runs
// "<executable> worker", which in the cleanroom binary is its hidden worker subcommand. Any
// other program that starts workers (a test binary) dispatches on it to RunWorker itself.
const WorkerArg = "worker"

// configEnv carries the worker's configuration (directories and limits, no secret) from the
// client to RunWorker; it is the only variable of the worker's minimal environment besides
// HOME and TMPDIR.
const configEnv = "CLEANROOM_SANDBOX_CONFIG"

// IsWorkerInvocation reports whether args (os.Args) start this process as a sandbox worker.
func IsWorkerInvocation(args []string) bool {
	return len(args) > 1 && args[1] == WorkerArg
}

// RunWorker serves as a sandbox worker on this process's stdin, stdout and source socket
// until the engine closes the pipe, and returns the process's exit code (0 after a clean
// stop). The caller exits with it; nothing else may run in the process, and nothing may be
// printed to stdout, which is the engine's pipe.
func RunWorker() int { return workerMain() }

func workerMain() int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "sandbox-worker")
	var cfg WorkerConfig
	if err := json.Unmarshal([]byte(os.Getenv(configEnv)), &cfg); err != nil {
		log.Error("bad worker configuration", "err", err)
		return 2
	}
	log = log.With("domain", cfg.Domain)
	out, err := takeEnginePipe()
	if err != nil {
		log.Error("take the engine's pipe", "err", err)
		return 2
	}
	iso := applyIsolation(cfg, log)
	if err := serve(context.Background(), cfg, iso, os.Stdin, out, sourceFD, log); err != nil {
		log.Error("worker stopped", "err", err)
		return 1
	}
	return 0
}

// Config starts a worker for one data domain.
type Config struct {
	// Command is the executable and arguments to run; the program must call RunWorker (the
	// cleanroom binary's hidden worker subcommand does). Default: this executable with the
	// single argument WorkerArg.
	Command []string
	Worker  WorkerConfig
	// Stderr receives the worker's logs (which never contain data values). Default os.Stderr.
	Stderr io.Writer
	// NoNetworkNamespace skips the namespace (for platforms without it); a warning results.
	NoNetworkNamespace bool
	// RawValueKey keys the raw-value sets the worker builds (rawset); it is sent with each
	// register and rawset request, never through the environment. Without it Register builds
	// no set.
	RawValueKey rawset.Key

	tap io.Writer // tests: a copy of every byte the worker sends
}

// Client is the engine's handle on one worker. Safe for concurrent use.
type Client struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	srcs   *os.File   // the source socket: descriptors of providers' sources go to the worker here
	dir    string     // the worker's directory, where ReadRawSet finds set files
	rawKey rawset.Key // see Config.RawValueKey

	wmu sync.Mutex
	mu  sync.Mutex
	ids uint64
	// pending calls by request id
	pending map[uint64]chan result
	dead    error
	done    chan struct{}
}

type result struct {
	resp    response
	payload []byte
}

// Start launches a worker process and returns once it answered its isolation report.
func Start(ctx context.Context, cfg Config) (*Client, *wire.Isolation, error) {
	if len(cfg.Command) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, nil, err
		}
		cfg.Command = []string{exe, WorkerArg}
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	if cfg.Worker.Dir == "" {
		return nil, nil, errors.New("sandbox: worker directory is required")
	}
	if err := cfg.Worker.DB.Check(); err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(filepath.Join(cfg.Worker.Dir, "tmp"), 0o700); err != nil {
		return nil, nil, err
	}
	if cfg.Worker.DB.TempDir == "" {
		cfg.Worker.DB.TempDir = filepath.Join(cfg.Worker.Dir, "tmp")
	}
	c, err := start(cfg, !cfg.NoNetworkNamespace)
	if err != nil && !cfg.NoNetworkNamespace && errors.Is(err, syscall.EPERM) {
		c, err = start(cfg, false)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("sandbox: start worker: %w", err)
	}
	iso, err := c.Isolation(ctx)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, iso, nil
}

func start(cfg Config, netns bool) (*Client, error) {
	wc := cfg.Worker
	wc.NetworkNamespace = netns
	js, err := json.Marshal(wc)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(cfg.Command[0], cfg.Command[1:]...)
	// A minimal environment: the worker inherits none of the server's secrets.
	cmd.Env = []string{configEnv + "=" + string(js), "HOME=" + wc.Dir, "TMPDIR=" + wc.DB.TempDir}
	cmd.Dir = wc.Dir
	cmd.Stderr = cfg.Stderr
	cmd.SysProcAttr = newNetNSAttr(netns)
	srcs, child, err := newSourceSocket()
	if err != nil {
		return nil, err
	}
	if child != nil { // nil outside Linux (source_other.go)
		defer child.Close()                // the worker holds its own copy once started
		cmd.ExtraFiles = []*os.File{child} // the worker's sourceFD
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		srcs.Close()
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		srcs.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		srcs.Close()
		return nil, err
	}
	c := &Client{cmd: cmd, stdin: stdin, srcs: srcs, dir: wc.Dir, rawKey: cfg.RawValueKey, pending: map[uint64]chan result{}, done: make(chan struct{})}
	var r io.Reader = stdout
	if cfg.tap != nil {
		r = io.TeeReader(stdout, cfg.tap)
	}
	go c.readLoop(r)
	return c, nil
}

func (c *Client) readLoop(r io.Reader) {
	err := func() error {
		for {
			hdr, err := readFrame(r)
			if err != nil {
				return err
			}
			var resp response
			if err := json.Unmarshal(hdr, &resp); err != nil {
				return err
			}
			var payload []byte
			if resp.Arrow {
				if payload, err = readFrame(r); err != nil {
					return err
				}
			}
			c.mu.Lock()
			ch := c.pending[resp.ID]
			delete(c.pending, resp.ID)
			c.mu.Unlock()
			if ch != nil {
				ch <- result{resp: resp, payload: payload}
			}
		}
	}()
	c.mu.Lock()
	c.dead = err
	for id, ch := range c.pending {
		close(ch)
		delete(c.pending, id)
	}
	c.mu.Unlock()
	close(c.done)
}

func (c *Client) call(ctx context.Context, req request) (result, error) {
	return c.callWith(ctx, req, nil)
}

// callWith is call that first hands the worker src's descriptor (when src is not nil).
func (c *Client) callWith(ctx context.Context, req request, src *os.File) (result, error) {
	c.mu.Lock()
	if c.dead != nil {
		c.mu.Unlock()
		return result{}, errcode.Wrap(errcode.SandboxFailed, c.dead, "the sandbox worker is not running")
	}
	c.ids++
	req.ID = c.ids
	ch := make(chan result, 1)
	c.pending[req.ID] = ch
	c.mu.Unlock()
	if err := c.send(req, src); err != nil {
		c.mu.Lock()
		delete(c.pending, req.ID)
		c.mu.Unlock()
		return result{}, errcode.Wrap(errcode.SandboxFailed, err, "the sandbox worker cannot be reached")
	}
	select {
	case res, ok := <-ch:
		if !ok {
			return result{}, errcode.New(errcode.SandboxFailed, "the sandbox worker exited during the request")
		}
		if e := res.resp.Error; e != nil {
			return result{}, &errcode.Error{Code: errcode.Code(e.Code), Message: e.Message, Position: -1}
		}
		return res, nil
	case <-ctx.Done():
		_ = c.send(request{Op: "cancel", Cancel: req.ID}, nil)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return result{}, errcode.Wrap(errcode.SandboxTimeout, ctx.Err(), "the request exceeded its deadline and was interrupted")
		}
		return result{}, errcode.Wrap(errcode.Canceled, ctx.Err(), "the request was canceled")
	}
}

// send writes a request frame; with src, it first sends src's descriptor on the source socket,
// under the same lock, so the worker finds descriptors in the order of the requests.
func (c *Client) send(req request, src *os.File) error {
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if src != nil {
		if err := sendSource(c.srcs, req.ID, src); err != nil {
			return err
		}
	}
	return writeFrame(c.stdin, b)
}

// Register builds the dataset's snapshot inside the worker from the provider's source and,
// when the client has a raw-value key, the snapshot's raw-value set (Snapshot.RawSet).
//
// src is the source, already open for reading: the worker reads it through a duplicate of its
// descriptor and never opens spec.Source.Path (which only gives errors the file's base name).
// The caller keeps src and closes it; Register does not read from it or move its offset, but
// the worker does (a CSV source is read from its current offset).
func (c *Client) Register(ctx context.Context, spec *catalog.Spec, src *os.File) (*wire.Snapshot, error) {
	if src == nil {
		return nil, errcode.New(errcode.Internal, "registration needs an open source file")
	}
	args := &registerArgs{Kind: string(spec.Source.Kind), Name: filepath.Base(spec.Source.Path), PrivacyUnit: spec.PrivacyUnit, Columns: spec.ColumnNames()}
	for _, name := range args.Columns {
		if spec.Columns[name].HasBounds() {
			args.Numeric = append(args.Numeric, name)
		}
	}
	if len(c.rawKey) > 0 {
		var err error
		if args.RawValues, err = c.rawValuesArgs(spec); err != nil {
			return nil, err
		}
	}
	res, err := c.callWith(ctx, request{Op: "register", Register: args}, src)
	if err != nil {
		return nil, err
	}
	snap := res.resp.Snapshot
	if snap != nil {
		snap.RawSet = res.resp.RawSet
	}
	return snap, nil
}

// Load makes an existing snapshot (by digest) queryable, verifying the file's digest.
func (c *Client) Load(ctx context.Context, digest string) (*wire.Snapshot, error) {
	res, err := c.call(ctx, request{Op: "load", Digest: digest})
	if err != nil {
		return nil, err
	}
	return res.resp.Snapshot, nil
}

// Verify re-reads a snapshot's file and checks it still has its digest (whether or not it is
// loaded): an auditor's replay fails clearly when the data at rest changed.
func (c *Client) Verify(ctx context.Context, digest string) error {
	_, err := c.call(ctx, request{Op: "verify", Digest: digest})
	return err
}

// Execute runs a bounded plan and returns the per-partition pre-noise states.
func (c *Client) Execute(ctx context.Context, p *wire.Plan) ([]wire.Partition, error) {
	parts, _, err := c.ExecuteWithBias(ctx, p)
	return parts, err
}

// ExecuteWithBias is Execute that also returns the pre-noise states of the plan's
// bounding-cost counts (nil when the plan asks for none).
func (c *Client) ExecuteWithBias(ctx context.Context, p *wire.Plan) ([]wire.Partition, *wire.BiasStates, error) {
	if p.Profile != nil {
		return nil, nil, errcode.New(errcode.Internal, "a profile plan is run by Profile")
	}
	res, err := c.call(ctx, request{Op: "execute", Plan: p})
	if err != nil {
		return nil, nil, err
	}
	parts, err := decodePartitions(res.payload, len(p.Keys), len(p.Aggregates))
	if err != nil {
		return nil, nil, errcode.Wrap(errcode.SandboxFailed, err, "the sandbox worker returned a malformed result")
	}
	if p.Bias != nil && (res.resp.Bias == nil || len(res.resp.Bias.Clamped) != len(p.Bias.Clamped)) {
		return nil, nil, errcode.New(errcode.SandboxFailed, "the sandbox worker returned no bounding-cost counts")
	}
	return parts, res.resp.Bias, nil
}

// Profile runs a plan with a Profile and returns its histogram bins' pre-noise states, one
// partition per bin that some unit reached, keyed by the bin's name (wire.ProfileBin).
func (c *Client) Profile(ctx context.Context, p *wire.Plan) ([]wire.Partition, error) {
	if p.Profile == nil {
		return nil, errcode.New(errcode.Internal, "a profile needs a plan with a Profile")
	}
	res, err := c.call(ctx, request{Op: "execute", Plan: p})
	if err != nil {
		return nil, err
	}
	parts, err := decodePartitions(res.payload, 1, 1)
	if err != nil {
		return nil, errcode.Wrap(errcode.SandboxFailed, err, "the sandbox worker returned a malformed result")
	}
	return parts, nil
}

// AnswerClaims has the worker answer encrypted claims (wire.Claims): one ciphertext back per
// ciphertext sent, which only the applicant's secret key opens.
func (c *Client) AnswerClaims(ctx context.Context, cl *wire.Claims) ([][]byte, error) {
	res, err := c.call(ctx, request{Op: "claims", Claims: cl})
	if err != nil {
		return nil, err
	}
	if len(res.resp.Answers) != len(cl.Ciphertexts) {
		return nil, errcode.New(errcode.SandboxFailed, "the sandbox worker returned %d answers for %d ciphertexts", len(res.resp.Answers), len(cl.Ciphertexts))
	}
	return res.resp.Answers, nil
}

// ModelPass runs one pass of a model job and returns its pre-noise state, which only the
// engine reads (dp/model decodes it against the spec it planned).
func (c *Client) ModelPass(ctx context.Context, p *wire.ModelPass) ([]byte, error) {
	res, err := c.call(ctx, request{Op: "model", Model: p})
	if err != nil {
		return nil, err
	}
	if len(res.resp.ModelState) == 0 {
		return nil, errcode.New(errcode.SandboxFailed, "the sandbox worker returned no model state")
	}
	return res.resp.ModelState, nil
}

// RunWasm has the worker run a custom model module by sample-and-aggregate (wire.Wasm) and
// returns the pre-noise block average; the caller adds the noise (dp.BlockMean).
func (c *Client) RunWasm(ctx context.Context, a *wire.Wasm) (*wire.WasmResult, error) {
	res, err := c.call(ctx, request{Op: "wasm", Wasm: a})
	if err != nil {
		return nil, err
	}
	r := res.resp.Wasm
	if r == nil || len(r.Mean) != a.Output.Length || r.Blocks != a.Blocks {
		return nil, errcode.New(errcode.SandboxFailed, "the sandbox worker returned a malformed custom model result")
	}
	return r, nil
}

// Isolation returns the worker's report of the isolation in force.
func (c *Client) Isolation(ctx context.Context) (*wire.Isolation, error) {
	res, err := c.call(ctx, request{Op: "isolation"})
	if err != nil {
		return nil, err
	}
	return res.resp.Isolation, nil
}

// Probe asks the worker to dial a loopback address: nil means the worker reached it.
func (c *Client) Probe(ctx context.Context, target string) error {
	_, err := c.call(ctx, request{Op: "probe", Target: target})
	return err
}

// Exited reports whether the worker process has gone (its output ended: it exited, crashed or
// was killed). An exited worker answers every call with sandbox_failed; start another.
func (c *Client) Exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Close ends the worker: its stdin closes, it finishes in-flight requests and exits.
func (c *Client) Close() error {
	c.stdin.Close()
	<-c.done
	err := c.cmd.Wait()
	c.srcs.Close()
	return err
}

// CollectiveIdentity returns the worker's domain signing public key (created on first use).
func (c *Client) CollectiveIdentity(ctx context.Context) ([]byte, error) {
	r, err := c.collective(ctx, request{Op: "collective_identity"})
	if err != nil {
		return nil, err
	}
	return r.SigningKey, nil
}

// CollectiveKeyGen has the worker draw its share of a collective key: its signed CKG share.
func (c *Client) CollectiveKeyGen(ctx context.Context, a *wire.CollectiveKeyGen) (*wire.CollectiveReply, error) {
	return c.collective(ctx, request{Op: "collective_keygen", KeyGen: a})
}

// CollectiveAccept hands the worker the collective key; it checks it and stores its share.
func (c *Client) CollectiveAccept(ctx context.Context, a *wire.CollectiveAccept) (*wire.CollectiveReply, error) {
	return c.collective(ctx, request{Op: "collective_accept", Accept: a})
}

// CollectiveInput has the worker bound and encrypt its aggregates of a federated job: one
// signed input message per job.
func (c *Client) CollectiveInput(ctx context.Context, a *wire.CollectiveInput) ([][]byte, error) {
	r, err := c.collective(ctx, request{Op: "collective_input", Input: a})
	if err != nil {
		return nil, err
	}
	if len(r.Messages) != len(a.Jobs) {
		return nil, errcode.New(errcode.FederatedProtocol, "the domain's worker returned %d inputs for %d jobs", len(r.Messages), len(a.Jobs))
	}
	return r.Messages, nil
}

// CollectiveKeySwitch has the worker key-switch verified sums: one signed share per job.
func (c *Client) CollectiveKeySwitch(ctx context.Context, a *wire.CollectiveKeySwitch) ([][]byte, error) {
	r, err := c.collective(ctx, request{Op: "collective_keyswitch", KeySwitch: a})
	if err != nil {
		return nil, err
	}
	if len(r.Messages) != len(a.Jobs) {
		return nil, errcode.New(errcode.FederatedProtocol, "the domain's worker returned %d key-switch shares for %d jobs", len(r.Messages), len(a.Jobs))
	}
	return r.Messages, nil
}

func (c *Client) collective(ctx context.Context, req request) (*wire.CollectiveReply, error) {
	res, err := c.call(ctx, req)
	if err != nil {
		return nil, err
	}
	if res.resp.Collective == nil {
		return nil, errcode.New(errcode.SandboxFailed, "the sandbox worker returned no answer to %s", req.Op)
	}
	return res.resp.Collective, nil
}
