package provenance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Event is one typed provenance record: the contract an auditor reads for twenty years. Each
// record type is one Go type, named by EventType and versioned by EventVersion, registered
// once in events.go; the writer (Log.Append), the readers (Entry.Decode) and the verifiers
// accept only registered types and versions. A registered type's JSON never changes: a change
// of fields is a new version, registered beside the old one, which stays readable.
type Event interface {
	// EventType is the record's "type", e.g. "job_submitted".
	EventType() string
	// EventVersion is the record's format version, ≥ 1. Version 1 is written without a
	// "version" key, as every record was before versions existed.
	EventVersion() int
}

// eventKey names one registered format: a type at a version.
type eventKey struct {
	typ     string
	version int
}

// registry maps each registered type and version to a constructor of its Go type.
var registry = map[eventKey]func() Event{}

// register adds events to the registry; a duplicate is a programming error.
func register(news ...func() Event) {
	for _, n := range news {
		ev := n()
		k := eventKey{ev.EventType(), ev.EventVersion()}
		if k.typ == "" || k.version < 1 {
			panic(fmt.Sprintf("provenance: event %T has type %q version %d", ev, k.typ, k.version))
		}
		if _, dup := registry[k]; dup {
			panic(fmt.Sprintf("provenance: event %s v%d registered twice", k.typ, k.version))
		}
		registry[k] = n
	}
}

// RegisteredEvent is one entry of the registry, as listed by Registered.
type RegisteredEvent struct {
	Type    string
	Version int
	// New returns a zero event of the type, for decoding or documentation.
	New func() Event
}

// Registered lists every registered event type and version, sorted by type then version.
func Registered() []RegisteredEvent {
	out := make([]RegisteredEvent, 0, len(registry))
	for k, n := range registry {
		out = append(out, RegisteredEvent{Type: k.typ, Version: k.version, New: n})
	}
	slices.SortFunc(out, func(a, b RegisteredEvent) int {
		if a.Type != b.Type {
			if a.Type < b.Type {
				return -1
			}
			return 1
		}
		return a.Version - b.Version
	})
	return out
}

// Known reports whether type typ at version (0 means 1) is registered.
func Known(typ string, version int) bool {
	if version == 0 {
		version = 1
	}
	_, ok := registry[eventKey{typ, version}]
	return ok
}

// Decode decodes a record's data as the registered event typ at version (0, absent, means 1).
// It refuses, wrapping ErrUnknownEvent, a type or version that is not registered, and, wrapping
// ErrInvalidRecord, data that is not a JSON object of the event's fields (an unknown field
// included: a field a type does not declare is a format change without a version).
func Decode(typ string, version int, data []byte) (Event, error) {
	if version == 0 {
		version = 1
	}
	n, ok := registry[eventKey{typ, version}]
	if !ok {
		return nil, fmt.Errorf("provenance: event %q version %d: %w", typ, version, ErrUnknownEvent)
	}
	ev := n()
	data = bytes.TrimSpace(data)
	if len(data) == 0 || string(data) == "null" {
		return ev, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(ev); err != nil {
		return nil, fmt.Errorf("provenance: event %q version %d: %w: %w", typ, version, ErrInvalidRecord, err)
	}
	return ev, nil
}

// RecordEnvelope is a record as written: the canonical JSON under an entry's "record" key. Data
// holds the event; Log.Append fills the envelope from a registered Event.
type RecordEnvelope struct {
	Type    string    `json:"type"`
	Version int       `json:"version,omitempty"` // absent means 1
	Job     string    `json:"job,omitempty"`
	Time    time.Time `json:"time"`           // UTC; Append sets it
	Data    any       `json:"data,omitempty"` // the event, marshalled to canonical JSON
}

// Record is an entry's record as read: its envelope, with the event decoded through the
// registry.
type Record struct {
	Type    string
	Version int // 1 when the record has no "version"
	Job     string
	Time    time.Time
	Event   Event
}

// recordHead is the envelope of a record with its data left undecoded.
type recordHead struct {
	Type    string          `json:"type"`
	Version int             `json:"version"`
	Job     string          `json:"job"`
	Time    time.Time       `json:"time"`
	Data    json.RawMessage `json:"data"`
}

func parseHead(rec []byte) (recordHead, error) {
	var h recordHead
	dec := json.NewDecoder(bytes.NewReader(rec))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return h, fmt.Errorf("provenance: record: %w: %w", ErrInvalidRecord, err)
	}
	if h.Type == "" || h.Version < 0 || h.Version == 1 {
		// Version 1 is spelled by leaving "version" out, so each record has one spelling.
		return h, fmt.Errorf("provenance: record type %q version %d: %w", h.Type, h.Version, ErrInvalidRecord)
	}
	if h.Version == 0 {
		h.Version = 1
	}
	return h, nil
}

// Decode reads the entry's record: its envelope and, through the registry, its event.
func (e Entry) Decode() (Record, error) {
	h, err := parseHead(e.Record)
	if err != nil {
		return Record{}, fmt.Errorf("entry %d: %w", e.Index, err)
	}
	ev, err := Decode(h.Type, h.Version, h.Data)
	if err != nil {
		return Record{}, fmt.Errorf("entry %d: %w", e.Index, err)
	}
	return Record{Type: h.Type, Version: h.Version, Job: h.Job, Time: h.Time, Event: ev}, nil
}

// Doc is a JSON document owned by another package — a worker plan, a policy input, a catalog
// spec — embedded in an event as that package encodes it. The provenance package does not
// import those packages (it stays small and free of cgo); a reader decodes a Doc into the
// owner's type with Decode. A zero Doc is written as null.
type Doc struct {
	v   any
	raw json.RawMessage
}

// DocOf wraps v, which is marshalled with encoding/json when the event is written.
func DocOf(v any) Doc { return Doc{v: v} }

// MarshalJSON implements json.Marshaler.
func (d Doc) MarshalJSON() ([]byte, error) {
	if d.raw != nil {
		return d.raw, nil
	}
	return json.Marshal(d.v)
}

// UnmarshalJSON implements json.Unmarshaler: it keeps the document as it is.
func (d *Doc) UnmarshalJSON(b []byte) error {
	d.v, d.raw = nil, append(json.RawMessage(nil), b...)
	return nil
}

// Raw returns the document's JSON.
func (d Doc) Raw() (json.RawMessage, error) { return d.MarshalJSON() }

// IsNull reports whether the document is absent or JSON null.
func (d Doc) IsNull() bool {
	raw, err := d.Raw()
	return err == nil && (len(raw) == 0 || string(raw) == "null")
}

// Decode decodes the document into v.
func (d Doc) Decode(v any) error {
	raw, err := d.Raw()
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}
