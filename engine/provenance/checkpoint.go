package provenance

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// OriginPrefix starts the origin line of every checkpoint of a cleanroom provenance log.
const OriginPrefix = "cleanroom provenance "

// Checkpoint is a signed statement of the log's Merkle tree: "the first Size entries have RFC
// 6962 root hash Root". Note is the C2SP signed note carrying it, verbatim; Origin, Size and Root
// are read from the note's text (see doc.go for the format).
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   tlog.Hash
	Note   []byte
}

// CheckpointOrigin returns the origin line of the checkpoints signed by the key whose verifier key
// is given: "cleanroom provenance " followed by the key hash, the 8 hex digits between the first
// and second '+' of the verifier key. It is stable for the key's lifetime and differs between
// keys, so a checkpoint names the log (and key) it belongs to.
func CheckpointOrigin(verifierKey string) (string, error) {
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		return "", fmt.Errorf("provenance: verifier key: %w: %w", ErrBadVerifierKey, err)
	}
	return fmt.Sprintf("%s%08x", OriginPrefix, v.KeyHash()), nil
}

// formatCheckpointBody renders a checkpoint's note text (C2SP tlog-checkpoint, no extension lines).
func formatCheckpointBody(origin string, size uint64, root tlog.Hash) []byte {
	return []byte(origin + "\n" + strconv.FormatUint(size, 10) + "\n" + base64.StdEncoding.EncodeToString(root[:]) + "\n")
}

// ParseCheckpoint verifies a checkpoint: msg must be a signed note with a valid signature by
// verifierKey (other signatures, such as witnesses' co-signatures, are ignored) whose text is
// exactly three lines — this key's origin (CheckpointOrigin), the tree size in decimal without
// leading zeros, and the root hash in standard base64 — each ending in a newline. Errors wrap
// ErrBadVerifierKey, ErrBadSignature (another key, or a signature that does not verify),
// ErrInvalidNote (not a signed note) or ErrBadCheckpoint (signed, but not such a text).
func ParseCheckpoint(msg []byte, verifierKey string) (Checkpoint, error) {
	origin, err := CheckpointOrigin(verifierKey)
	if err != nil {
		return Checkpoint{}, err
	}
	text, err := VerifyNote(msg, verifierKey)
	if err != nil {
		return Checkpoint{}, err
	}
	cp, err := parseCheckpointBody(text)
	if err != nil {
		return Checkpoint{}, err
	}
	if cp.Origin != origin {
		return Checkpoint{}, fmt.Errorf("provenance: checkpoint origin is not %q: %w", origin, ErrBadCheckpoint)
	}
	cp.Note = bytes.Clone(msg)
	return cp, nil
}

// parseUnverifiedCheckpoint reads a checkpoint's text without checking its signature (Open needs
// no key to see whether the log still agrees with its checkpoints).
func parseUnverifiedCheckpoint(msg []byte) (Checkpoint, error) {
	_, err := note.Open(msg, note.VerifierList())
	var unverified *note.UnverifiedNoteError
	if !errors.As(err, &unverified) {
		return Checkpoint{}, fmt.Errorf("provenance: checkpoint: %w", ErrInvalidNote)
	}
	cp, err := parseCheckpointBody([]byte(unverified.Note.Text))
	if err != nil {
		return Checkpoint{}, err
	}
	cp.Note = bytes.Clone(msg)
	return cp, nil
}

// parseCheckpointBody parses a checkpoint's text strictly: one spelling per checkpoint.
func parseCheckpointBody(text []byte) (Checkpoint, error) {
	bad := func(what string) (Checkpoint, error) {
		return Checkpoint{}, fmt.Errorf("provenance: checkpoint %s: %w", what, ErrBadCheckpoint)
	}
	lines := strings.SplitAfter(string(text), "\n")
	if len(lines) != 4 || lines[3] != "" {
		return bad("text is not three lines")
	}
	origin := strings.TrimSuffix(lines[0], "\n")
	sizeText := strings.TrimSuffix(lines[1], "\n")
	rootText := strings.TrimSuffix(lines[2], "\n")
	if !strings.HasPrefix(origin, OriginPrefix) || len(origin) == len(OriginPrefix) {
		return bad("origin")
	}
	size, err := strconv.ParseUint(sizeText, 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != sizeText || size > math.MaxInt64 {
		return bad("size")
	}
	raw, err := base64.StdEncoding.DecodeString(rootText)
	if err != nil || len(raw) != tlog.HashSize || base64.StdEncoding.EncodeToString(raw) != rootText {
		return bad("root hash")
	}
	cp := Checkpoint{Origin: origin, Size: size}
	copy(cp.Root[:], raw)
	return cp, nil
}

// checkpointLine is one line of the checkpoints file, <log>.checkpoints:
//
//	{"size":N,"key":"<verifier key>","note":"<signed note, JSON-escaped>"}\n
//
// Size repeats the note's size; key names the signer's verifier key for Export (it is never
// trusted: verifiers use the key they hold).
type checkpointLine struct {
	Size *uint64 `json:"size"`
	Key  *string `json:"key"`
	Note *string `json:"note"`
}

// frameCheckpoint renders a checkpoints file line, newline included.
func frameCheckpoint(size uint64, key string, msg []byte) ([]byte, error) {
	n := string(msg)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(checkpointLine{Size: &size, Key: &key, Note: &n}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// cpInfo is what a check of the log needs from one line of the checkpoints file.
type cpInfo struct {
	line    int // 1-based line number in the checkpoints file
	size    uint64
	root    tlog.Hash
	problem string // set when the line itself is bad: ProblemCheckpointMalformed or …BadSignature
}

// cpFile is the checkpoints file as read.
type cpFile struct {
	cps       []cpInfo
	latest    Checkpoint // the last checkpoint, if it parsed
	latestKey string     // the key its line names
	good      int64      // bytes of complete lines
	torn      int64      // bytes after the last newline: a write cut short by a crash
}

// hasLatest reports whether the file's last line is a checkpoint that parsed.
func (c *cpFile) hasLatest() bool {
	return len(c.cps) > 0 && c.cps[len(c.cps)-1].problem == "" && c.latest.Note != nil
}

// readCheckpoints reads a checkpoints file. With a verifierKey each checkpoint's signature and
// origin are checked (ParseCheckpoint); without, only its form. A bad line becomes a cpInfo with
// a problem; the error is only for reading r.
func readCheckpoints(r io.Reader, verifierKey string) (cpFile, error) {
	return readCheckpointsVisit(r, verifierKey, nil)
}

// readCheckpointsVisit is readCheckpoints that also shows visit each good checkpoint and the
// verifier key its line names.
func readCheckpointsVisit(r io.Reader, verifierKey string, visit func(cp Checkpoint, key string)) (cpFile, error) {
	var out cpFile
	if r == nil {
		return out, nil
	}
	br := bufio.NewReaderSize(r, 64<<10)
	for lineNo := 1; ; lineNo++ {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] != '\n' {
			out.torn = int64(len(line))
			break
		}
		if len(line) > 0 {
			info, cp, key := parseCheckpointLine(line, verifierKey)
			info.line = lineNo
			out.cps = append(out.cps, info)
			if info.problem == "" {
				out.latest, out.latestKey = cp, key
				if visit != nil {
					visit(cp, key)
				}
			}
			out.good += int64(len(line))
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return out, fmt.Errorf("provenance: read checkpoints: %w", err)
		}
	}
	return out, nil
}

func parseCheckpointLine(line []byte, verifierKey string) (cpInfo, Checkpoint, string) {
	malformed := cpInfo{problem: ProblemCheckpointMalformed}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var cl checkpointLine
	if err := dec.Decode(&cl); err != nil || cl.Size == nil || cl.Key == nil || cl.Note == nil {
		return malformed, Checkpoint{}, ""
	}
	if _, err := dec.Token(); err != io.EOF {
		return malformed, Checkpoint{}, ""
	}
	var cp Checkpoint
	var err error
	if verifierKey != "" {
		cp, err = ParseCheckpoint([]byte(*cl.Note), verifierKey)
		if errors.Is(err, ErrBadSignature) {
			return cpInfo{size: *cl.Size, problem: ProblemCheckpointBadSignature}, Checkpoint{}, ""
		}
	} else {
		cp, err = parseUnverifiedCheckpoint([]byte(*cl.Note))
	}
	if err != nil || cp.Size != *cl.Size {
		return malformed, Checkpoint{}, ""
	}
	return cpInfo{size: cp.Size, root: cp.Root}, cp, *cl.Key
}

// cpProblem is the first checkpoint that the log contradicts or that is bad itself.
type cpProblem struct {
	problem  string
	firstBad int64
	line     int
}

// checkCheckpoints checks the checkpoints in file order against a log whose first logSize entries
// verified, roots holding the tree head at each checkpoint size up to logSize. It stops at the
// first problem and returns how many checkpoints verified before it. FirstBad is, for a
// checkpoint beyond the log, logSize (the first missing entry); for every other problem, the
// largest size vouched for by the checkpoints verified before it (0 if none): the first entry no
// good checkpoint confirms.
func checkCheckpoints(cps []cpInfo, logSize uint64, roots map[uint64]tlog.Hash) (int, *cpProblem) {
	var vouched uint64
	for i, c := range cps {
		fail := func(problem string, firstBad uint64) (int, *cpProblem) {
			return i, &cpProblem{problem: problem, firstBad: int64(firstBad), line: c.line}
		}
		switch {
		case c.problem != "":
			return fail(c.problem, vouched)
		case c.size < vouched:
			return fail(ProblemCheckpointOutOfOrder, vouched)
		case c.size > logSize:
			return fail(ProblemCheckpointBeyondLog, logSize)
		case roots[c.size] != c.root:
			return fail(ProblemCheckpointRootMismatch, vouched)
		}
		vouched = c.size
	}
	return len(cps), nil
}
