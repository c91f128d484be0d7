package provenance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// Canonical returns the canonical JSON encoding of v, in the style of RFC 8785: object keys
// sorted, no insignificant whitespace, HTML escaping off, and numbers written exactly as Go's
// encoding/json writes them after a round trip through json.Number (so an integer stays an
// integer and no float is re-rounded). v is first marshalled with encoding/json, so struct tags,
// omitempty and json.Marshaler apply; a json.RawMessage is canonicalised as the JSON it holds.
//
// Two deliberate differences from RFC 8785: keys are ordered by their UTF-8 bytes (Go's map
// order) rather than by UTF-16 code units, which differs only between supplementary-plane
// characters and U+E000–U+FFFF; and numbers keep their JSON literal rather than being
// re-serialised as ECMAScript doubles. Both are stable, which is what the hash chain needs.
func Canonical(v any) ([]byte, error) {
	first, err := encode(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(first))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return nil, fmt.Errorf("provenance: canonical: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("provenance: canonical: trailing data after JSON value")
	}
	return encode(generic)
}

// encode marshals v with HTML escaping off and without the encoder's trailing newline.
func encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("provenance: canonical: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}
